//! An app's webhook: endpoint URL and event subscriptions.

use super::*;

/// Zoom's event names: `product.event` in lower case, e.g. `meeting.ended`,
/// `endpoint.url_validation`, `app_deauthorized`.
pub(super) fn valid_event_name(e: &str) -> bool {
    !e.is_empty()
        && e.len() <= 100
        && e.starts_with(|c: char| c.is_ascii_lowercase())
        && e.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
        && !e.ends_with('.')
        && !e.contains("..")
}

/// Zoom allows at most 20 event subscriptions per app (docs/zoom-platform.md §16).
pub(super) const MAX_EVENTS: usize = 20;

pub(super) fn check_webhook(cx: &mut Ctx<'_>, app: &str, w: &Spanned<RawWebhook>) -> Option<Webhook> {
    let f = |field: &str| format!("apps.{app}.webhook.{field}");
    let raw = w.get_ref();
    let before = cx.diags.len();
    let endpoint_url = match &raw.endpoint_url {
        None => {
            cx.err(
                w.span(),
                &f("endpoint_url"),
                "missing-field",
                "`webhook.endpoint_url` is missing: the provider needs to know where to send events",
                "add e.g. `endpoint_url = \"https://hooks.example.com/events\"`, or remove [webhook]",
            );
            String::new()
        }
        Some(u) => {
            let s = u.get_ref();
            // https, or http on loopback (a local receiver such as `connapp webhook serve`).
            if let Err(p) = check_url(s) {
                cx.err(u.span(), &f("endpoint_url"), p.rule, p.message, p.fix);
            }
            s.clone()
        }
    };
    let mut events = Vec::new();
    match &raw.events {
        None => cx.err(
            w.span(),
            &f("events"),
            "missing-field",
            "`webhook.events` is missing",
            "add the events to receive, e.g. `events = [\"meeting.ended\"]`",
        ),
        Some(list) if list.get_ref().is_empty() => cx.err(
            list.span(),
            &f("events"),
            "webhook-events-empty",
            "the webhook subscribes to no events",
            "add the events to receive, e.g. `events = [\"meeting.ended\"]`, or remove [webhook]",
        ),
        Some(list) => {
            if list.get_ref().len() > MAX_EVENTS {
                cx.err(
                    list.span(),
                    &f("events"),
                    "webhook-events-count",
                    format!(
                        "{} events; an app subscribes to at most {MAX_EVENTS}",
                        list.get_ref().len()
                    ),
                    "drop the events nobody consumes",
                );
            }
            for (i, e) in list.get_ref().iter().enumerate() {
                let name = e.get_ref();
                if !valid_event_name(name) {
                    cx.err(
                        e.span(),
                        &format!("apps.{app}.webhook.events[{i}]"),
                        "webhook-event-name",
                        format!("{name:?} is not an event name"),
                        "write it as the provider's event reference does, lower case with dots, e.g. \"meeting.ended\"",
                    );
                } else if events.contains(name) {
                    cx.err(
                        e.span(),
                        &format!("apps.{app}.webhook.events[{i}]"),
                        "webhook-event-duplicate",
                        format!("the event {name:?} is listed twice"),
                        "remove the duplicate",
                    );
                } else {
                    events.push(name.clone());
                }
            }
        }
    }
    if cx.diags.len() > before {
        return None;
    }
    Some(Webhook { endpoint_url, events })
}
