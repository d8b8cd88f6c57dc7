//! Email over SMTP (lettre): multipart/alternative with a text and an HTML part.
//!
//! `ZALOFLOW_SMTP_URL`:
//! - `smtp://user:pass@host:port`: plain SMTP to localhost (`localhost`, `127.0.0.0/8`, `::1`);
//!   to any other host STARTTLS is required (port 587 by default), unless `?tls=none` says the
//!   operator really wants plain text (a relay on a private network);
//! - `smtps://user:pass@host:port`: TLS from the first byte (port 465 by default).
//!
//! Open/click tracking: [`with_tracking`] rewrites an HTML body before it is sent; the tracking
//! routes (`/t/o/{token}`, `/t/c/{token}`) that the URLs point to live in the HTTP layer.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use super::{wrong_payload, Channel, Delivered, Payload, SendError};

pub const NAME: &str = "email";

/// Sends [`Payload::Email`].
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// the domain of Message-IDs
    domain: String,
}

impl fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// Parses the SMTP URL (see the module docs). Errors never show the password.
    pub fn new(smtp_url: &str, from: Option<&str>, timeout: Duration) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(smtp_url)
            .map_err(|e| anyhow::anyhow!("ZALOFLOW_SMTP_URL is not a URL: {e}"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow::anyhow!("ZALOFLOW_SMTP_URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls_mode = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.to_string());
        let local = is_loopback(&host);
        let (tls, default_port) = match (url.scheme(), tls_mode.as_deref()) {
            ("smtps", _) => (Tls::Wrapper(tls_parameters(&host)?), 465),
            ("smtp", Some("none")) => (Tls::None, 25),
            ("smtp", Some("required" | "starttls")) => (Tls::Required(tls_parameters(&host)?), 587),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(tls_parameters(&host)?), 587),
            ("smtp", None) if local => (Tls::None, 25),
            ("smtp", None) => (Tls::Required(tls_parameters(&host)?), 587),
            ("smtp", Some(other)) => {
                anyhow::bail!(
                    "ZALOFLOW_SMTP_URL: unknown tls={other:?} (none, starttls, opportunistic)"
                )
            }
            (other, _) => anyhow::bail!("ZALOFLOW_SMTP_URL: scheme {other:?} is not smtp or smtps"),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(timeout));
        let user = percent_decode(url.username());
        if !user.is_empty() {
            let password = url.password().map(percent_decode).unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from = match from.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => f.to_string(),
            None if user.contains('@') => user.clone(),
            None => format!("zaloflow@{host}"),
        };
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("email sender {from:?} is not an address: {e}"))?;
        let domain = from.email.domain().to_string();
        Ok(EmailChannel {
            transport: builder.build(),
            from,
            domain,
        })
    }
}

fn tls_parameters(host: &str) -> anyhow::Result<TlsParameters> {
    TlsParameters::new(host.to_string())
        .map_err(|e| anyhow::anyhow!("SMTP TLS set-up for {host}: {e}"))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// `%XX` escapes of a URL's user or password.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn smtp_error(e: &lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(|c| i64::from(u16::from(c)));
    let message = format!("SMTP: {e}");
    if e.is_permanent() || e.is_client() {
        SendError::Permanent { code, message }
    } else {
        SendError::Transient {
            code,
            message,
            retry_after: None,
        }
    }
}

#[async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, p: &Payload) -> Result<Delivered, SendError> {
        let Payload::Email {
            to,
            subject,
            html,
            text,
            ..
        } = p
        else {
            return Err(wrong_payload(NAME, p));
        };
        let to: Mailbox = to
            .parse()
            .map_err(|e| SendError::permanent(format!("invalid recipient address: {e}")))?;
        let message_id = format!(
            "<{}@{}>",
            hex::encode(rand::random::<[u8; 12]>()),
            self.domain
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(subject)
            .message_id(Some(message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                text.clone(),
                html.clone(),
            ))
            .map_err(|e| SendError::permanent(format!("cannot build the email: {e}")))?;
        let response = self
            .transport
            .send(message)
            .await
            .map_err(|e| smtp_error(&e))?;
        Ok(Delivered {
            provider_id: Some(message_id),
            detail: json!({
                "to": to.email.to_string(),
                "smtp_code": u16::from(response.code()),
                "smtp_message": response.message().collect::<Vec<_>>().join(" "),
            }),
        })
    }
}

/// Adds open/click tracking to an HTML email body.
///
/// Appends a 1×1 image pointing at `open_pixel_url` (just before `</body>` when there is one)
/// and replaces the target of every `href` attribute *of a tag* that is an `http(s)` link by
/// `rewrite_link(original)` (the original is given unescaped; the result is HTML-escaped).
/// Text between tags is never read as a link, even when it says `href=…` (a customer's name,
/// escaped, is text). Other links (`mailto:`, `tel:`, `#anchors`) are left alone.
pub fn with_tracking(
    html: &str,
    open_pixel_url: &str,
    rewrite_link: impl Fn(&str) -> String,
) -> String {
    let mut out = String::with_capacity(html.len() + 128);
    let b = html.as_bytes();
    let mut pos = 0; // copied up to here
    let mut i = 0;
    while i < b.len() {
        // Text until a tag opens: `<` and a letter.
        if !(b[i] == b'<' && b.get(i + 1).is_some_and(u8::is_ascii_alphabetic)) {
            if b[i..].starts_with(b"<!--") {
                i = html[i..].find("-->").map_or(b.len(), |e| i + e + 3);
            } else {
                i += 1;
            }
            continue;
        }
        // Inside a tag: the name, then attributes until `>`.
        i += 1;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
            i += 1;
        }
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' {
                i += 1;
                break;
            }
            let name_start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/')
            {
                i += 1;
            }
            let name = &html[name_start..i];
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j >= b.len() || b[j] != b'=' {
                continue;
            }
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let (quote, body_start) = match b.get(j) {
                Some(b'"') => (Some(b'"'), j + 1),
                Some(b'\'') => (Some(b'\''), j + 1),
                _ => (None, j),
            };
            let body_end = match quote {
                Some(q) => b[body_start..]
                    .iter()
                    .position(|c| *c == q)
                    .map_or(b.len(), |e| body_start + e),
                None => b[body_start..]
                    .iter()
                    .position(|c| c.is_ascii_whitespace() || *c == b'>')
                    .map_or(b.len(), |e| body_start + e),
            };
            if name.eq_ignore_ascii_case("href") {
                let original = html_unescape(&html[body_start..body_end]);
                let lower = original.trim().to_ascii_lowercase();
                if lower.starts_with("http://") || lower.starts_with("https://") {
                    out.push_str(&html[pos..body_start]);
                    let new = html_escape(&rewrite_link(original.trim()));
                    if quote.is_some() {
                        out.push_str(&new);
                    } else {
                        out.push('"');
                        out.push_str(&new);
                        out.push('"');
                    }
                    pos = body_end;
                }
            }
            i = (body_end + usize::from(quote.is_some())).min(b.len());
        }
    }
    out.push_str(&html[pos.min(html.len())..]);
    let pixel = format!(
        r#"<img src="{}" width="1" height="1" alt="" style="display:none">"#,
        html_escape(open_pixel_url)
    );
    match out.to_ascii_lowercase().rfind("</body>") {
        Some(i) => out.insert_str(i, &pixel),
        None => out.push_str(&pixel),
    }
    out
}

/// The targets [`with_tracking`] would rewrite, in its order (link N of a click token).
pub fn tracked_links(html: &str) -> Vec<String> {
    let found = std::cell::RefCell::new(Vec::new());
    with_tracking(html, "", |u| {
        found.borrow_mut().push(u.to_string());
        u.to_string()
    });
    found.into_inner()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_rewrites_http_links_and_adds_pixel() {
        let html = r#"<html><BODY><a href="https://shop.example/p?a=1&amp;b=2">x</a> <a HREF='mailto:a@b.c'>m</a> <a href=http://u.example/x>u</a><p data-href="no">t</p></BODY></html>"#;
        let out = with_tracking(html, "https://t.example/t/o/abc?x=1&y=2", |u| {
            format!("https://t.example/t/c/{}", u.len())
        });
        assert!(out.contains(r#"href="https://t.example/t/c/30""#), "{out}");
        assert!(out.contains("HREF='mailto:a@b.c'"), "{out}");
        assert!(
            out.contains(r#"href="https://t.example/t/c/18">u"#),
            "{out}"
        );
        assert!(out.contains(r#"data-href="no""#), "{out}");
        assert!(out.contains(
            r#"<img src="https://t.example/t/o/abc?x=1&amp;y=2" width="1" height="1" alt="" style="display:none"></BODY>"#
        ), "{out}");
        let bare = with_tracking("<p>hi</p>", "http://p", |u| u.to_string());
        assert!(bare.starts_with("<p>hi</p><img src=\"http://p\""));
    }

    #[test]
    fn text_that_says_href_is_not_a_link() {
        // A customer's name, escaped by the template: text, never tracked.
        let html = "<p>Chào a href=https://evil.example/x và &lt;a href=&quot;https://evil.example/y&quot;&gt;</p><!-- <a href=\"https://evil.example/z\"> --><a title='x href=https://e.example' href=\"https://shop.example/\">ok</a>";
        let mut seen = Vec::new();
        let out = std::cell::RefCell::new(&mut seen);
        let rewritten = with_tracking(html, "https://t/o", |u| {
            out.borrow_mut().push(u.to_string());
            "https://t/c/1".to_string()
        });
        assert_eq!(seen, ["https://shop.example/"]);
        assert!(
            rewritten.contains("Chào a href=https://evil.example/x và"),
            "{rewritten}"
        );
        assert!(
            rewritten.contains(r#"href="https://t/c/1">ok"#),
            "{rewritten}"
        );
    }

    #[test]
    fn smtp_urls() {
        let t = Duration::from_secs(5);
        assert!(EmailChannel::new("smtp://127.0.0.1:2525", None, t).is_ok());
        assert!(EmailChannel::new("smtp://u%40x.vn:p%2Fw@mail.example", None, t).is_ok());
        assert!(EmailChannel::new("smtps://mail.example", Some("Shop <shop@x.vn>"), t).is_ok());
        let err = EmailChannel::new("http://user:S3CR3T@mail.example", None, t).unwrap_err();
        assert!(!err.to_string().contains("S3CR3T"), "{err}");
        assert!(EmailChannel::new("smtp://mail.example?tls=bogus", None, t).is_err());
        assert!(EmailChannel::new("smtp://localhost", Some("not an address"), t).is_err());
        assert_eq!(percent_decode("u%40x.vn"), "u@x.vn");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
