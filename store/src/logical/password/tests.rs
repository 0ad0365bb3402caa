//! Parsing, the checks, and the generator over many draws.

use std::collections::BTreeMap;

use super::*;

const MIXED: &str = r#"
length = 16
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 1
}
rule "charset" {
  charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 2
}
rule "charset" {
  charset = "0123456789"
  min-chars = 3
}
rule "charset" {
  charset = "!@#$%^&*"
  min-chars = 1
}
"#;

fn err(text: &str) -> String {
    PasswordPolicy::parse(text).unwrap_err().to_string()
}

#[test]
fn parses_vaults_example_in_hcl_and_json() {
    let p = PasswordPolicy::parse(MIXED).unwrap();
    assert_eq!(p.length, 16);
    assert_eq!(p.rules.len(), 4);
    assert_eq!(p.rules[2].min_chars, 3);
    assert_eq!(p.charset().len(), 26 + 26 + 10 + 8);
    let json = r#"{"length": 8, "rule": [{"charset": {"charset": "ab", "min-chars": 1}},
                   {"charset": [{"charset": "cd"}, {"charset": "ef", "min-chars": 2}]}]}"#;
    let p = PasswordPolicy::parse(json).unwrap();
    assert_eq!(p.rules.len(), 3);
    assert_eq!(p.rules[1].min_chars, 0);
    assert_eq!(p.charset(), &['a', 'b', 'c', 'd', 'e', 'f']);
    // Overlapping charsets count once in the union.
    let p = PasswordPolicy::parse(
        "length = 5\nrule \"charset\" {\n charset = \"abc\"\n}\nrule \"charset\" {\n charset = \"bcd\"\n}\n",
    )
    .unwrap();
    assert_eq!(p.charset(), &['a', 'b', 'c', 'd']);
}

#[test]
fn each_bad_policy_is_refused_with_its_reason() {
    let charset = "rule \"charset\" {\n  charset = \"abc\"\n}\n";
    for (text, want) in [
        ("length = ", "unable to decode"),
        (charset, "length must be > 0"),
        ("length = -3\n", "length must not be negative"),
        ("length = \"x\"\n", "length must be an integer"),
        ("length = 4\n", "no charset specified"),
        (
            "length = 2\nrule \"charset\" {\n charset = \"ab\"\n min-chars = 3\n}\n",
            "specified rules require at least 3 characters but 2 is specified",
        ),
        (
            "length = 8\nrule \"charset\" {\n min-chars = 1\n}\n",
            "charset is missing or empty",
        ),
        (
            "length = 8\nrule \"charset\" {\n charset = \"\"\n}\n",
            "charset is missing or empty",
        ),
        (
            "length = 8\nrule \"charset\" {\n charset = \"a\\tb\"\n}\n",
            "non-printable character in charset",
        ),
        (
            "length = 8\nrule \"charset\" {\n charset = \"ab\"\n min-chars = -1\n}\n",
            "min-chars must not be negative",
        ),
        (
            "length = 8\nrule \"charset\" {\n charset = 5\n}\n",
            "charset must be a string",
        ),
        (
            "length = 8\nrule \"charset\" {\n charset = \"ab\"\n max-chars = 1\n}\n",
            "unknown key \"max-chars\"",
        ),
        (
            "length = 8\nrule \"dictionary\" {\n words = \"ab\"\n}\n",
            "unrecognized rule type \"dictionary\"",
        ),
        (
            "length = 8\nrule {\n charset = \"ab\"\n}\n",
            "exactly one label",
        ),
        ("length = 8\nwidth = 3\n", "unknown key \"width\""),
        ("length = 8\npath \"x\" {\n}\n", "unknown block \"path\""),
        ("{\"length\": 8, \"extra\": 1}", "unknown key \"extra\""),
        (
            "{\"length\": 8, \"rule\": {\"upper\": {}}}",
            "unrecognized rule type",
        ),
        ("{\"length\": 8, \"rule\": 3}", "must be an object"),
        ("{\"length\": 8", "unable to decode"),
    ] {
        let msg = err(text);
        assert!(msg.contains(want), "{text:?}: {msg}");
    }
    let wide: String = ('\u{100}'..='\u{300}').collect();
    let msg = err(&format!(
        "length = 8\nrule \"charset\" {{\n charset = \"{wide}\"\n}}\n"
    ));
    assert!(msg.contains("charset is too long"), "{msg}");
}

#[test]
fn stored_policies_are_between_4_and_100_characters() {
    let policy = |n| {
        PasswordPolicy::parse(&format!(
            "length = {n}\nrule \"charset\" {{\n charset = \"ab\"\n}}\n"
        ))
        .unwrap()
    };
    for n in [4, 20, 100] {
        policy(n).check_length().unwrap();
    }
    for n in [1, 3, 101] {
        assert_eq!(
            policy(n).check_length().unwrap_err().to_string(),
            "passwords must be between 4 and 100 characters"
        );
    }
}

/// Count characters over `draws` passwords, each checked against the policy.
fn draw(policy: &PasswordPolicy, draws: usize) -> BTreeMap<char, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..draws {
        let p = policy.generate().unwrap();
        assert!(policy.satisfied_by(&p), "{} breaks the rules", p.as_str());
        for c in p.chars() {
            *seen.entry(c).or_insert(0) += 1;
        }
    }
    seen
}

/// Pearson's chi-square of the counts against a uniform spread over `alphabet`.
fn chi_square(seen: &BTreeMap<char, usize>, alphabet: &[char]) -> f64 {
    let total: usize = alphabet.iter().map(|c| *seen.get(c).unwrap_or(&0)).sum();
    let expected = total as f64 / alphabet.len() as f64;
    alphabet
        .iter()
        .map(|c| {
            let o = *seen.get(c).unwrap_or(&0) as f64;
            (o - expected).powi(2) / expected
        })
        .sum()
}

#[test]
fn ten_thousand_draws_satisfy_the_rules_and_use_every_character() {
    let policy = PasswordPolicy::parse(MIXED).unwrap();
    let seen = draw(&policy, 10_000);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        policy.charset(),
        "every allowed character appears, and nothing else"
    );
    // Each class's characters are equally likely among themselves (the rules favour the
    // classes they require, not characters within one). 25 degrees of freedom: the 0.1%
    // critical value is 52.6.
    let lower: Vec<char> = ('a'..='z').collect();
    let chi = chi_square(&seen, &lower);
    assert!(
        chi < 52.6,
        "lower-case letters are not uniform: chi-square {chi}"
    );
    let digits: Vec<char> = ('0'..='9').collect();
    let chi = chi_square(&seen, &digits);
    assert!(
        chi < 27.9,
        "digits are not uniform: chi-square {chi} (9 d.o.f., 0.1%: 27.9)"
    );
}

#[test]
fn without_min_chars_the_spread_is_uniform() {
    let policy = PasswordPolicy::parse(
        "length = 20\nrule \"charset\" {\n charset = \"abcdefghijklmnopqrstuvwxyz0123456789\"\n}\n",
    )
    .unwrap();
    let seen = draw(&policy, 10_000);
    let chi = chi_square(&seen, policy.charset());
    // 35 degrees of freedom: the 0.1% critical value is 66.6.
    assert!(chi < 66.6, "chi-square {chi}");
}

#[test]
fn unicode_charsets_draw_whole_characters() {
    let policy = PasswordPolicy::parse(
        "length = 6\nrule \"charset\" {\n charset = \"äöü€\"\n min-chars = 6\n}\n",
    )
    .unwrap();
    for _ in 0..100 {
        let p = policy.generate().unwrap();
        assert_eq!(p.chars().count(), 6);
        assert!(policy.satisfied_by(&p));
    }
}

#[test]
fn the_default_policy_is_vaults() {
    for n in [20, 24, 4] {
        let policy = PasswordPolicy::default_with_length(n);
        for _ in 0..2_000 {
            let p = generate_default(n);
            assert!(policy.satisfied_by(&p), "{}", p.as_str());
            assert!(p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        }
    }
    // Too short for its four rules: raised to 4.
    assert_eq!(generate_default(1).len(), 4);
    assert_ne!(*generate_default(20), *generate_default(20));
}

#[test]
fn an_improbable_policy_times_out() {
    // 60 of one character among 200 others: practically never drawn.
    let others: String = ('\u{100}'..'\u{1c8}').collect();
    let policy = PasswordPolicy::parse(&format!(
        "length = 100\nrule \"charset\" {{\n charset = \"a\"\n min-chars = 60\n}}\n\
         rule \"charset\" {{\n charset = \"{others}\"\n}}\n"
    ))
    .unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        policy.generate_within(Duration::from_millis(50)),
        Err(GenerateTimeout)
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
}
