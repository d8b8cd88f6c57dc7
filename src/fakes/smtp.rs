//! A tiny SMTP server for the demo: accepts every message on 127.0.0.1 and keeps it, so the
//! campaign emails of the scripted week can be shown. (Tests use a real one: aiosmtpd.)

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message as received.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub data: String,
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub async fn start() -> anyhow::Result<SmtpSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let store = mails.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = session(sock, store).await;
                });
            }
        });
        Ok(SmtpSink { port, mails })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("smtp sink lock").clone()
    }
}

async fn session(sock: tokio::net::TcpStream, store: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"220 zaloflow-demo ESMTP\r\n").await?;
    let mut mail = Mail::default();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            w.write_all(b"250-zaloflow-demo\r\n250 8BITMIME\r\n")
                .await?;
        } else if upper.starts_with("RCPT TO:") {
            mail.to
                .push(line[8..].trim().trim_matches(['<', '>']).to_string());
            w.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("DATA") {
            w.write_all(b"354 go on\r\n").await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(&l);
                data.push('\n');
            }
            mail.subject = decode_subject(&data);
            mail.data = data;
            store
                .lock()
                .expect("smtp sink lock")
                .push(std::mem::take(&mut mail));
            w.write_all(b"250 queued\r\n").await?;
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            break;
        } else {
            // HELO, MAIL FROM, RSET, NOOP…
            w.write_all(b"250 OK\r\n").await?;
        }
    }
    Ok(())
}

/// The Subject header, decoded when it is an RFC 2047 UTF-8 base64 word.
fn decode_subject(data: &str) -> String {
    use base64::Engine;
    let lines: Vec<&str> = data.lines().collect();
    let Some(start) = lines
        .iter()
        .position(|l| l.to_ascii_lowercase().starts_with("subject:"))
    else {
        return String::new();
    };
    // The header with its folded continuation lines.
    let mut v = lines[start][8..].to_string();
    for l in &lines[start + 1..] {
        if l.starts_with([' ', '\t']) {
            v.push(' ');
            v.push_str(l.trim());
        } else {
            break;
        }
    }
    // Whitespace between two encoded words is not part of the text (RFC 2047); any other is.
    let mut bytes = Vec::new();
    let mut last_encoded = false;
    for word in v.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        let decoded = (lower.starts_with("=?utf-8?b?") && word.ends_with("?="))
            .then(|| {
                base64::engine::general_purpose::STANDARD
                    .decode(&word[10..word.len() - 2])
                    .ok()
            })
            .flatten();
        let encoded = decoded.is_some();
        let between_encoded = encoded && last_encoded;
        if !bytes.is_empty() && !between_encoded {
            bytes.push(b' ');
        }
        match decoded {
            Some(b) => bytes.extend(b),
            None => bytes.extend(word.as_bytes()),
        }
        last_encoded = encoded;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
