//! The AWS auth method's reading of STS answers (store/src/auth/aws/iam.rs): the
//! GetCallerIdentity document, an error document's code, the caller's ARN.
//!
//! Input: a mode byte, then the bytes. Checks: no panic on any answer; an identity written as
//! STS writes it (values XML-escaped) reads back the same; a parsed ARN's canonical form
//! parses to the same principal.
#![no_main]

use hush_store::auth::aws::iam::{error_code, parse_caller_identity, CallerIdentity, Principal};
use libfuzzer_sys::fuzz_target;
use quick_xml::escape::escape;

fn check_arn(arn: &str) {
    if let Ok(p) = Principal::parse(arn) {
        let canonical = p.canonical_arn();
        let again = Principal::parse(&canonical).expect("a canonical ARN parses");
        assert_eq!(again, p, "{canonical}");
    }
}

fn document(id: &CallerIdentity) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  \
         <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    \
         <Account>{}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    \
         <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>\n  </ResponseMetadata>\n\
         </GetCallerIdentityResponse>\n",
        escape(&id.arn),
        escape(&id.user_id),
        escape(&id.account)
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        // Any answer.
        if let Some(code) = error_code(rest) {
            assert!(!code.is_empty() && code.len() <= 64);
        }
        if let Ok(id) = parse_caller_identity(rest) {
            assert!(!id.arn.is_empty() && !id.account.is_empty());
            check_arn(&id.arn);
        }
        return;
    }
    // Three values separated by 0 bytes, written into a well-formed answer.
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut values = text.split('\0').map(str::trim);
    let (Some(arn), Some(user_id), Some(account)) = (values.next(), values.next(), values.next())
    else {
        return;
    };
    let id = CallerIdentity {
        arn: arn.to_string(),
        user_id: user_id.to_string(),
        account: account.to_string(),
    };
    // XML 1.0 has no way to write most control characters.
    if [arn, user_id, account]
        .iter()
        .any(|v| v.chars().any(char::is_control))
    {
        return;
    }
    check_arn(arn);
    let xml = document(&id);
    match parse_caller_identity(xml.as_bytes()) {
        Ok(back) => assert_eq!(back, id, "{xml}"),
        Err(e) => assert!(arn.is_empty() || account.is_empty(), "{e}: {xml}"),
    }
});
