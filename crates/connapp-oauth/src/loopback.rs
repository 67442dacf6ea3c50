//! The one-shot loopback listener that receives the consent redirect, and
//! the paste-back parser for `--no-browser`.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use url::Url;

/// Why a consent did not produce a code.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// The user (or the provider) declined.
    #[error("the consent was declined: {error}{}", description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        /// OAuth error code, e.g. `access_denied`.
        error: String,
        /// Description, if any.
        description: Option<String>,
    },
    /// The `state` did not match: the redirect was not for this login.
    #[error(
        "the redirect carried a different state than this login sent; it was not for this login (possible CSRF), so it was ignored"
    )]
    StateMismatch,
    /// No redirect arrived in time.
    #[error("no redirect arrived within {0} s")]
    Timeout(u64),
    /// The pasted text is not a redirect URL with a code.
    #[error("{0}")]
    BadPaste(String),
    /// Local IO failed.
    #[error("loopback listener: {0}")]
    Io(String),
}

/// A bound listener for one redirect.
pub struct Loopback {
    listener: TcpListener,
    path: String,
    /// The redirect URI to send to the provider (with the bound port).
    pub redirect_uri: Url,
}

const PAGE_OK: &str = "<!doctype html><meta charset=utf-8><title>connapp</title><body style=\"font-family:system-ui;margin:3em\"><h1>connapp: consent received</h1><p>You can close this window and return to the terminal.</p>";

fn page_err(msg: &str) -> String {
    let esc = msg.replace('&', "&amp;").replace('<', "&lt;");
    format!(
        "<!doctype html><meta charset=utf-8><title>connapp</title><body style=\"font-family:system-ui;margin:3em\"><h1>connapp: no token</h1><p>{esc}</p><p>Return to the terminal for details.</p>"
    )
}

/// The most of a request head the loopback listener reads (a browser's is a few KiB).
pub const MAX_REQUEST_HEAD: u64 = 64 * 1024;
/// How long one connection may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

impl Loopback {
    /// Binds the loopback host of `template` (`http://127.0.0.1[:port]/path`);
    /// port 0 or none picks a free one (Zoom ignores the port of loopback redirects).
    pub async fn bind(template: &Url) -> Result<Self, ConsentError> {
        let host = template
            .host_str()
            .unwrap_or("127.0.0.1")
            .trim_matches(['[', ']'])
            .to_string();
        let port = template.port().unwrap_or(0);
        let listener = TcpListener::bind((host.as_str(), port))
            .await
            .map_err(|e| ConsentError::Io(format!("cannot listen on {host}:{port}: {e}")))?;
        let bound = listener.local_addr().map_err(|e| ConsentError::Io(e.to_string()))?;
        let mut redirect_uri = template.clone();
        redirect_uri
            .set_port(Some(bound.port()))
            .map_err(|_| ConsentError::Io("cannot set the port".into()))?;
        Ok(Loopback {
            listener,
            path: template.path().to_string(),
            redirect_uri,
        })
    }

    /// Waits for the redirect; answers the browser with a short page.
    /// Connections that send no request head within [`HEAD_TIMEOUT`], or a
    /// head over [`MAX_REQUEST_HEAD`], are dropped and the wait goes on.
    pub async fn wait(self, state: &str, timeout: Duration) -> Result<String, ConsentError> {
        let fut = async {
            loop {
                let (stream, _) = self
                    .listener
                    .accept()
                    .await
                    .map_err(|e| ConsentError::Io(e.to_string()))?;
                let (read, mut write) = stream.into_split();
                // Any local process can connect: the request head is bounded
                // in size and time, so a stray client cannot hold the login.
                let mut reader = BufReader::new(read.take(MAX_REQUEST_HEAD));
                let head = async {
                    let mut line = String::new();
                    reader.read_line(&mut line).await.ok()?;
                    // Drain the headers so the browser sees a clean response.
                    loop {
                        let mut h = String::new();
                        match reader.read_line(&mut h).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) if h == "\r\n" || h == "\n" => break,
                            Ok(_) => {}
                        }
                    }
                    Some(line)
                };
                let Ok(Some(line)) = tokio::time::timeout(HEAD_TIMEOUT, head).await else {
                    continue;
                };
                let target = line.split_whitespace().nth(1).unwrap_or("");
                let Ok(url) = Url::parse(&format!("http://loopback{target}")) else {
                    continue;
                };
                if url.path() != self.path {
                    let _ = write
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    continue;
                }
                let result = outcome(&url, state);
                let body = match &result {
                    Ok(_) => PAGE_OK.to_string(),
                    Err(e) => page_err(&e.to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = write.write_all(resp.as_bytes()).await;
                let _ = write.shutdown().await;
                return result;
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ConsentError::Timeout(timeout.as_secs()))?
    }
}

fn outcome(url: &Url, state: &str) -> Result<String, ConsentError> {
    let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |k: &str| q.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    if get("state").as_deref() != Some(state) {
        return Err(ConsentError::StateMismatch);
    }
    if let Some(error) = get("error") {
        return Err(ConsentError::Denied {
            error,
            description: get("error_description"),
        });
    }
    get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ConsentError::BadPaste("the redirect has neither a code nor an error".into()))
}

/// Parses the URL a user pasted after consenting (`--no-browser`).
pub fn parse_pasted(text: &str, state: &str) -> Result<String, ConsentError> {
    let t = text.trim();
    let url = Url::parse(t).map_err(|_| {
        ConsentError::BadPaste("that is not a URL; paste the whole address from the browser's address bar".into())
    })?;
    outcome(&url, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_urls() {
        assert_eq!(
            parse_pasted("http://127.0.0.1:5/cb?code=abc&state=s1\n", "s1").expect("code"),
            "abc"
        );
        assert!(matches!(
            parse_pasted("http://127.0.0.1/cb?code=abc&state=x", "s1"),
            Err(ConsentError::StateMismatch)
        ));
        assert!(matches!(
            parse_pasted("http://127.0.0.1/cb?error=access_denied&state=s1", "s1"),
            Err(ConsentError::Denied { .. })
        ));
        assert!(matches!(parse_pasted("abc", "s1"), Err(ConsentError::BadPaste(_))));
    }

    #[tokio::test]
    async fn the_listener_takes_one_redirect() {
        let lb = Loopback::bind(&Url::parse("http://127.0.0.1/callback").expect("url"))
            .await
            .expect("bind");
        let uri = lb.redirect_uri.clone();
        assert_ne!(uri.port(), None);
        let client = tokio::spawn(async move {
            let http = crate::http_client().expect("client");
            let base = format!("http://127.0.0.1:{}", uri.port().unwrap_or(0));
            let _ = http.get(format!("{base}/favicon.ico")).send().await;
            http.get(format!("{base}/callback?code=c0de&state=st"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        let code = lb.wait("st", Duration::from_secs(5)).await.expect("code");
        assert_eq!(code, "c0de");
        assert_eq!(client.await.expect("join").expect("request"), 200);
    }

    /// A local client that sends an endless request line (and never ends
    /// it) does not hold the listener: its head is cut at the bound, and
    /// the browser's redirect after it is taken. Unbounded, the wait would
    /// block on that line until its timeout.
    #[tokio::test]
    async fn an_endless_request_line_does_not_hold_the_listener() {
        let lb = Loopback::bind(&Url::parse("http://127.0.0.1/callback").expect("url"))
            .await
            .expect("bind");
        let port = lb.redirect_uri.port().unwrap_or(0);
        let client = tokio::spawn(async move {
            let mut hog = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            hog.write_all(b"GET /").await.expect("write");
            hog.write_all(&vec![b'a'; 2 * MAX_REQUEST_HEAD as usize])
                .await
                .expect("write");
            let http = crate::http_client().expect("client");
            let status = http
                .get(format!("http://127.0.0.1:{port}/callback?code=c0de&state=st"))
                .send()
                .await
                .map(|r| r.status().as_u16());
            drop(hog);
            status
        });
        let code = lb.wait("st", Duration::from_secs(8)).await.expect("code");
        assert_eq!(code, "c0de");
        assert_eq!(client.await.expect("join").expect("request"), 200);
    }
}
