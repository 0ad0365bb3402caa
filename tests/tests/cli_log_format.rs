//! `--log-format text|json`: one spelling for hushd, hush-agent and `hush dev`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use hush_tests::bin;

#[test]
fn a_wrong_format_is_refused_with_the_same_words_everywhere() {
    for (program, args) in [
        ("hushd", vec!["--dev", "--listen", "127.0.0.1:0"]),
        ("hush-agent", vec!["--once"]),
        ("hush", vec!["dev", "--no-wait"]),
    ] {
        let out = Command::new(bin(program))
            .args(&args)
            .args(["--log-format", "xml"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("want text or json, not \"xml\""),
            "{program}: {stderr}"
        );
        assert_ne!(out.status.code(), Some(0), "{program}");
    }
    // The variable is read when the flag is absent.
    let out = Command::new(bin("hush-agent"))
        .arg("--once")
        .env("HUSH_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not \"yaml\""));
}

/// hushd's first log line in each format: JSON objects for `json`, plain text for `text` and
/// for `plain`, its older name.
#[test]
fn hushd_writes_the_format_it_is_given() {
    for (format, json) in [("json", true), ("text", false), ("plain", false)] {
        let mut child = Command::new(bin("hushd"))
            .args(["--dev", "--listen", "127.0.0.1:0", "--log-format", format])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let parsed = serde_json::from_str::<serde_json::Value>(&line);
        assert_eq!(parsed.is_ok(), json, "{format}: {line}");
        assert!(line.contains("unsealed"), "{format}: {line}");
    }
}

/// `hush dev --log-format json` hands the format to the agents it starts (and to hushd).
#[test]
fn hush_dev_passes_the_format_on() {
    let out = Command::new(bin("hush"))
        .args([
            "dev",
            "--no-wait",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let agent_lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("$ hush-agent "))
        .collect();
    assert_eq!(agent_lines.len(), 2, "{stdout}");
    for line in agent_lines {
        assert!(line.contains(" --log-format json "), "{line}");
    }
}
