//! The HTML the "zoom.us" side shows: sign-in + consent, and error pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::state::{App, User};

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f6fb;margin:0;color:#1f2937}
.card{max-width:480px;margin:48px auto;background:#fff;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.08);padding:32px}
.brand{color:#0b5cff;font-weight:700;font-size:22px;margin-bottom:4px}.sub{color:#6b7280;font-size:13px;margin-bottom:24px}
h1{font-size:20px;margin:0 0 12px}ul{padding-left:20px}li{margin:4px 0;font-family:ui-monospace,monospace;font-size:13px}
label{display:block;margin:16px 0 6px;font-weight:600}select{width:100%;padding:8px;border-radius:6px;border:1px solid #d1d5db}
.buttons{display:flex;gap:12px;margin-top:24px}button{flex:1;padding:10px;border-radius:8px;border:0;font-size:15px;cursor:pointer}
#allow{background:#0b5cff;color:#fff}#deny{background:#e5e7eb}.err{color:#b91c1c}.code{color:#6b7280;font-size:13px}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\
         <body><div class=\"card\"><div class=\"brand\">zoom</div><div class=\"sub\">connapp sandbox &mdash; not the real Zoom</div>{body}</div></body></html>",
        esc(title)
    )
}

/// An error page that does not redirect (Zoom's 4700 "Invalid redirect url" and friends).
pub fn error_page(status: StatusCode, code: u32, message: &str, detail: &str) -> Response {
    let body = format!(
        "<h1 class=\"err\" id=\"error\">{}</h1><p class=\"code\">Error code: {code}</p><p>{}</p>",
        esc(message),
        esc(detail)
    );
    (status, Html(page(message, &body))).into_response()
}

/// The sign-in + consent page: pick a simulated user, Allow or Deny.
pub fn consent_page(app: &App, users: &[User], scopes: &[String], hidden: &[(String, String)]) -> Response {
    let mut fields = String::new();
    for (k, v) in hidden {
        fields.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        ));
    }
    let mut options = String::new();
    for u in users {
        options.push_str(&format!(
            "<option value=\"{}\">{} {} ({}, {})</option>",
            esc(&u.login),
            esc(&u.first_name),
            esc(&u.last_name),
            esc(&u.email),
            u.role.zoom_name()
        ));
    }
    let scope_list: String = scopes.iter().map(|s| format!("<li>{}</li>", esc(s))).collect();
    let body = format!(
        "<h1>{name} would like to access your Zoom account</h1>\
         <p>It will be able to:</p><ul id=\"scopes\">{scope_list}</ul>\
         <form method=\"post\" action=\"/oauth/authorize\">{fields}\
         <label for=\"user\">Sign in as</label><select id=\"user\" name=\"user\">{options}</select>\
         <div class=\"buttons\"><button id=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">Decline</button>\
         <button id=\"allow\" type=\"submit\" name=\"decision\" value=\"allow\">Allow</button></div></form>",
        name = esc(&app.name)
    );
    (StatusCode::OK, Html(page("Authorize app", &body))).into_response()
}
