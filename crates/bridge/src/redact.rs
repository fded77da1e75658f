//! Keeps secrets out of everything the bridge writes: log lines, stderr and
//! error messages. Two nets: fields named like secrets are never written, and
//! every secret value that arrives in a request is remembered and scrubbed from
//! any text on its way out.

use std::borrow::Cow;
use std::sync::RwLock;

use serde_json::Value;

/// What replaces a secret.
pub const MASK: &str = "[redacted]";

/// Most secret values kept for scrubbing; the oldest go first.
const MAX_REMEMBERED: usize = 1024;

/// Shorter values would mask ordinary words.
const MIN_LEN: usize = 4;

static REMEMBERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Whether a field with this name holds a secret.
pub fn is_sensitive_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "passphrase",
        "token",
        "apikey",
        "api_key",
        "credential",
        "secretkey",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
        && lower != "passwordsecret"
        && lower != "password_secret"
}

/// Remembers a secret value so `scrub` masks it wherever it shows up.
pub fn remember(secret: &str) {
    if secret.len() < MIN_LEN {
        return;
    }
    let mut known = REMEMBERED.write().unwrap_or_else(|e| e.into_inner());
    if known.iter().any(|k| k == secret) {
        return;
    }
    if known.len() >= MAX_REMEMBERED {
        known.remove(0);
    }
    known.push(secret.to_owned());
}

/// Remembers every secret in a request's params: fields named like secrets,
/// the `value` of `secret.*` methods, and the password inside connection URLs.
pub fn remember_in_params(method: &str, params: &Value) {
    walk(params, method.starts_with("secret."));
}

fn walk(value: &Value, values_are_secret: bool) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("value", Value::String(s)) if values_are_secret => remember(s),
                    ("url", Value::String(url)) => {
                        if let Some(password) = url_password(url) {
                            remember(password);
                        }
                    }
                    (name, Value::String(s)) if is_sensitive_name(name) => remember(s),
                    _ => walk(v, values_are_secret),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, values_are_secret)),
        _ => {}
    }
}

/// The password of `scheme://user:password@host/...`, if any.
pub fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then_some(password)
}

/// Masks every remembered secret in `text` where it stands as a token of its
/// own (no letter or digit right before or after), so that a short secret
/// cannot mangle ordinary words ("wrong" inside "wrongKey") while a secret in
/// a URL, a quote or a path is still caught.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let known = REMEMBERED.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            let replaced = mask_tokens(&out, secret);
            if let Some(replaced) = replaced {
                out = Cow::Owned(replaced);
            }
        }
    }
    out
}

fn mask_tokens(text: &str, secret: &str) -> Option<String> {
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut changed = false;
    for (at, _) in text.match_indices(secret) {
        if at < rest {
            continue;
        }
        let before = text[..at].chars().next_back();
        let after = text[at + secret.len()..].chars().next();
        if is_word(before) || is_word(after) {
            continue;
        }
        out.push_str(&text[rest..at]);
        out.push_str(MASK);
        rest = at + secret.len();
        changed = true;
    }
    changed.then(|| {
        out.push_str(&text[rest..]);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_sensitive_name("password"));
        assert!(is_sensitive_name("dbPassword"));
        assert!(is_sensitive_name("token"));
        assert!(!is_sensitive_name("passwordSecret"));
        assert!(!is_sensitive_name("sessionId"));
    }

    #[test]
    fn urls_and_scrub() {
        assert_eq!(
            url_password("postgres://me:s3cr3t!@db/app"),
            Some("s3cr3t!")
        );
        assert_eq!(url_password("postgres://me@db/app"), None);
        remember_in_params(
            "session.open",
            &serde_json::json!({"connection": {"url": "postgres://u:hunter2hunter@h/d"}}),
        );
        assert_eq!(
            scrub("failed for postgres://u:hunter2hunter@h/d"),
            format!("failed for postgres://u:{MASK}@h/d")
        );
        remember_in_params(
            "secret.store",
            &serde_json::json!({"key": "k", "value": "v4lu3-xyz"}),
        );
        assert_eq!(scrub("x v4lu3-xyz y"), format!("x {MASK} y"));
        assert_eq!(scrub("\"v4lu3-xyz\""), format!("\"{MASK}\""));
        remember("wrong");
        assert_eq!(scrub("wrongKey: wrong"), format!("wrongKey: {MASK}"));
    }
}
