//! A stand-in for a person's browser against the local sandboxes: opens a
//! consent link (ServiceNow's `oauth_initiator.do`, or the authorize URL
//! `connapp login` prints), signs in at the Zoom sandbox as a named user and
//! clicks Allow, then follows the redirects to the end — so the journey
//! works on a machine without a browser (`connapp sandbox consent URL`).
//!
//! It only ever talks to this machine: any other host is refused.

use std::time::Duration;

use url::Url;

/// Where a consent ended: the last address and what its page said.
#[derive(Clone, Debug)]
pub struct Landed {
    /// The address of the last page, without its query (the authorization
    /// code and state ride there).
    pub url: String,
    /// Its HTTP status.
    pub status: u16,
    /// The page's text without markup (shortened).
    pub text: String,
}

/// Why a consent could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// Not an absolute URL.
    #[error("{0:?} is not a URL")]
    NotAUrl(String),
    /// A host other than this machine.
    #[error(
        "{0} is not on this machine: connapp sandbox consent stands in for a browser only against the local sandboxes"
    )]
    NotLocal(String),
    /// The request failed.
    #[error("cannot reach {0}: {1}")]
    Unreachable(String, String),
    /// The chain of redirects did not end.
    #[error("more than 10 redirects")]
    TooManyRedirects,
    /// The runtime could not start.
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
}

fn local(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Text of an HTML page, tags dropped and white space folded, at most 300 characters.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let folded = out.split_whitespace().collect::<Vec<_>>().join(" ");
    folded.chars().take(300).collect()
}

/// Opens `link` as `user` would in a browser: at the Zoom sandbox's authorize
/// page they sign in as `user` and click Allow; every redirect is followed.
pub fn consent(link: &str, user: &str) -> Result<Landed, ConsentError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ConsentError::Runtime)?;
    rt.block_on(async {
        let http = crate::webhooks::client_with_timeout(Duration::from_secs(30));
        let mut url = Url::parse(link).map_err(|_| ConsentError::NotAUrl(link.to_string()))?;
        for _ in 0..10 {
            if !local(&url) {
                return Err(ConsentError::NotLocal(url.host_str().unwrap_or("").to_string()));
            }
            let request = if url.path() == "/oauth/authorize" {
                // The consent page: sign in as `user`, click Allow.
                let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                form.push(("user".into(), user.into()));
                form.push(("decision".into(), "allow".into()));
                let mut post = url.clone();
                post.set_query(None);
                http.post(post).form(&form)
            } else {
                http.get(url.clone())
            };
            let resp = request
                .send()
                .await
                .map_err(|e| ConsentError::Unreachable(url.to_string(), e.without_url().to_string()))?;
            let status = resp.status().as_u16();
            if resp.status().is_redirection()
                && let Some(next) = resp.headers().get("location").and_then(|l| l.to_str().ok())
            {
                url = url.join(next).map_err(|_| ConsentError::NotAUrl(next.to_string()))?;
                continue;
            }
            let body = resp.text().await.unwrap_or_default();
            let mut shown = url.clone();
            shown.set_query(None);
            return Ok(Landed {
                url: shown.to_string(),
                status,
                text: text_of(&body),
            });
        }
        Err(ConsentError::TooManyRedirects)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_goes_nowhere_but_this_machine() {
        for link in [
            "https://zoom.us/oauth/authorize?x=1",
            "http://10.0.0.1/oauth_initiator.do",
        ] {
            let e = consent(link, "admin").expect_err("refused");
            assert!(matches!(e, ConsentError::NotLocal(_)), "{link}: {e}");
        }
        assert!(matches!(consent("not a url", "admin"), Err(ConsentError::NotAUrl(_))));
        assert_eq!(text_of("<p>OAuth <b>token</b>\n received</p>"), "OAuth token received");
    }
}
