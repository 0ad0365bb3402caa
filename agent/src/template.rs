//! Templates (minijinja) that may combine fields of several secrets: `{{ secrets.db.user }}`.
//!
//! Undefined values are errors (a typo must not render an empty password), nothing is
//! auto-escaped, and errors name the file and line but never carry a value: minijinja's
//! `debug` feature (which dumps the context) is off, and for render errors only the kind of
//! error is kept.

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

/// A fresh environment with the agent's settings.
pub fn environment<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env
}

/// The message for a template error of `file`, without any value.
pub fn describe(file: &str, e: &minijinja::Error) -> String {
    // These kinds' details name things of the template (a filter, a variable), not values.
    let detail_is_safe = matches!(
        e.kind(),
        ErrorKind::SyntaxError
            | ErrorKind::UnknownFilter
            | ErrorKind::UnknownFunction
            | ErrorKind::UnknownTest
            | ErrorKind::UnknownMethod
            | ErrorKind::UndefinedError
            | ErrorKind::TemplateNotFound
    );
    let what = match e.detail() {
        Some(d) if detail_is_safe => format!("{}: {d}", e.kind()),
        _ => e.kind().to_string(),
    };
    match e.line() {
        Some(line) => format!("file {file:?}: template line {line}: {what}"),
        None => format!("file {file:?}: template: {what}"),
    }
}

/// Check a template's syntax (at config time).
pub fn check(file: &str, text: &str) -> Result<(), String> {
    let mut env = environment();
    env.add_template(file, text).map_err(|e| describe(file, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_file_and_line() {
        assert!(check("ok.conf", "a={{ secrets.db.a }}\n").is_ok());
        let msg = check("app.conf", "line one\nvalue={{ secrets.db.a \n").unwrap_err();
        assert!(
            msg.starts_with("file \"app.conf\": template line 2: syntax error"),
            "{msg}"
        );
    }
}
