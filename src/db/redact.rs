//! Keeping the password of `database.url` out of every message that could quote the URL: a
//! driver's error may print the whole connection string (sea-orm's "The connection string '...'
//! cannot be parsed"), and start-up errors go to the terminal, the orchestrator's event list and
//! the log shipper.

use percent_encoding::percent_decode_str;

/// What a password is replaced with.
const MASK: &str = "***";

/// `text` with every appearance of `url`'s password masked, as written in the URL and
/// percent-decoded.
///
/// The password is found in the URL's text, not by parsing it: the URLs whose errors quote them
/// are those no parser takes (an unescaped `/` in the password ends the authority, and what is
/// left has no valid port). Everything between the scheme's `://` and the last `@` is the user
/// and password, so a password holding `@`, `/`, `?` or `#` is masked whole; an `@` further on (in
/// the query) only makes more of the text masked, never less.
pub fn without_password(text: &str, url: &str) -> String {
    let Some(password) = password_of(url) else {
        return text.to_owned();
    };
    let mut text = text.replace(password, MASK);
    if let Ok(decoded) = percent_decode_str(password).decode_utf8()
        && !decoded.is_empty()
        && decoded != password
    {
        text = text.replace(decoded.as_ref(), MASK);
    }
    text
}

fn password_of(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (user_info, _) = rest.rsplit_once('@')?;
    let (_, password) = user_info.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn passwords_are_masked_in_urls_no_parser_takes_and_in_decoded_form() {
        let url = "postgres://svc:Zx9/Qw+Er7tY@db:5432/ota";
        let message = format!("The connection string '{url}' cannot be parsed.");
        assert_eq!(
            without_password(&message, url),
            "The connection string 'postgres://svc:***@db:5432/ota' cannot be parsed."
        );
        let url = "postgresql://svc:p%40ss%2Fw0rd@db/ota?sslmode=require";
        assert_eq!(
            without_password(&format!("{url} p@ss/w0rd"), url),
            "postgresql://svc:***@db/ota?sslmode=require ***"
        );
        assert_eq!(without_password("user pa@ss:w", "postgres://user:pa@ss:w@db/x"), "user ***");
    }

    #[test]
    fn urls_without_a_password_leave_the_text_alone() {
        for url in
            ["sqlite://data/x.db", "postgres://svc@db/ota", "postgres://svc:@db/ota", "postgres://db/ota"]
        {
            assert_eq!(without_password(&format!("cannot open {url}"), url), format!("cannot open {url}"));
        }
    }
}
