//! The Attachment API (`docs/operations.md` §5): `POST
//! /api/now/attachment/file?table_name=&table_sys_id=&file_name=` with the
//! file as the raw body and its `Content-Type`, answering 201 and
//! `{"result": {sys_attachment metadata}}`; `GET /api/now/attachment`
//! (`sysparm_query` on the metadata, e.g. `table_sys_id=ID`) lists
//! metadata; `GET /api/now/attachment/{sys_id}/file` returns the bytes.
//! The caller must be allowed to write (upload) or read (list, download)
//! the record's table, and the record must exist.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::Digest;

use super::table::{enter, sn_error};
use super::{Attachment, Row, SnCtx, glide_time, may_read, may_write, query};
use crate::random::random_hex;

/// The largest file the sandbox takes (ServiceNow's default is far larger;
/// evidence is a few KiB).
const MAX_ATTACHMENT: usize = 16 << 20;

pub(super) fn routes() -> axum::Router<SnCtx> {
    axum::Router::new()
        .route(
            "/api/now/attachment/file",
            post(upload).layer(DefaultBodyLimit::max(MAX_ATTACHMENT)),
        )
        .route("/api/now/attachment", get(list))
        .route("/api/now/attachment/{sys_id}/file", get(download))
}

type Params = Query<HashMap<String, String>>;

fn meta_json(m: &Row) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

async fn upload(State(ctx): State<SnCtx>, h: HeaderMap, Query(p): Params, body: Bytes) -> Response {
    let (user, _) = match enter(&ctx, &h) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (Some(table), Some(id), Some(name)) = (p.get("table_name"), p.get("table_sys_id"), p.get("file_name")) else {
        return sn_error(
            400,
            "Missing parameter",
            Some("table_name, table_sys_id and file_name are required"),
        );
    };
    if !may_write(table, &user.roles) {
        return sn_error(
            403,
            "Operation Failed",
            Some("Error getting the record or you do not have access to it"),
        );
    }
    let mut s = ctx.lock();
    if s.row(table, id).is_none() {
        return sn_error(400, "Invalid table or record", Some(&format!("{table} {id}")));
    }
    let content_type = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let sys_id = random_hex(16);
    let hash: String = sha2::Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    let now = glide_time(s.now());
    let meta: Row = [
        ("sys_id", sys_id.clone()),
        ("file_name", name.clone()),
        ("table_name", table.clone()),
        ("table_sys_id", id.clone()),
        ("content_type", content_type),
        ("size_bytes", body.len().to_string()),
        ("hash", hash),
        ("sys_created_on", now.clone()),
        ("sys_updated_on", now),
        ("sys_created_by", user.user_name.clone()),
        (
            "download_link",
            format!("{}/api/now/attachment/{sys_id}/file", s.base_url),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let answer = meta_json(&meta);
    s.attachments.push(Attachment {
        meta,
        bytes: body.to_vec(),
    });
    (StatusCode::CREATED, Json(json!({ "result": answer }))).into_response()
}

async fn list(State(ctx): State<SnCtx>, h: HeaderMap, Query(p): Params) -> Response {
    let (user, _) = match enter(&ctx, &h) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let s = ctx.lock();
    const FIELDS: [&str; 6] = [
        "sys_id",
        "file_name",
        "table_name",
        "table_sys_id",
        "content_type",
        "size_bytes",
    ];
    let q = query::parse(p.get("sysparm_query").map_or("", String::as_str), &|f| {
        FIELDS.contains(&f)
    });
    let rows: Vec<Value> = s
        .attachments
        .iter()
        .filter(|a| may_read(a.meta.get("table_name").map_or("", String::as_str), &user.roles))
        .filter(|a| q.matches(&|f| a.meta.get(f).cloned().unwrap_or_default()))
        .map(|a| meta_json(&a.meta))
        .collect();
    Json(json!({ "result": rows })).into_response()
}

async fn download(State(ctx): State<SnCtx>, h: HeaderMap, Path(sys_id): Path<String>) -> Response {
    let (user, _) = match enter(&ctx, &h) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let s = ctx.lock();
    let Some(a) = s
        .attachments
        .iter()
        .find(|a| a.meta.get("sys_id") == Some(&sys_id))
        .filter(|a| may_read(a.meta.get("table_name").map_or("", String::as_str), &user.roles))
    else {
        return sn_error(
            404,
            "No Record found",
            Some("Record doesn't exist or ACL restricts the record retrieval"),
        );
    };
    let ct = a
        .meta
        .get("content_type")
        .cloned()
        .unwrap_or_else(|| "application/octet-stream".into());
    ([(header::CONTENT_TYPE, ct)], a.bytes.clone()).into_response()
}
