//! runtimeinfo: what Knative Serving's runtime test image
//! (`test/test_images/runtime`) reports, as an okonomi function, so that the
//! same checks run against the engine and a real cluster.
//!
//! - `GET /` answers JSON: `{"host": {"envs", "args", "user", "mounts",
//!   "files"}, "request": {"uri", "host", "method", "headers"}}`, the shape
//!   of Knative's `types.RuntimeInfo` for the fields it has here.
//! - `GET /file?path=ABSOLUTE` answers the file's bytes (404 naming the
//!   error when it cannot be read): how a test reads a mounted ConfigMap or
//!   Secret.
//!
//! It shows its instance's environment and any file it can read: deploy it
//! for tests only, never beside real secrets a caller must not see.

use okonomi::serde_json::{Map, Value, json};
use okonomi::{IntoResponse, Request, http::StatusCode};

/// Files whose metadata Knative's runtime contract speaks of.
const FILES: &[&str] = &[
    "/dev/fd",
    "/dev/full",
    "/dev/null",
    "/dev/random",
    "/dev/urandom",
    "/dev/zero",
    "/proc/self/fd",
    "/tmp",
    "/etc/resolv.conf",
    "/dev/console",
];

fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

/// `%XX` escapes and `+` (a query's space) decoded; invalid escapes kept.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn file_info(path: &str) -> Value {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) => json!({
            "size": meta.len(),
            "isDir": meta.is_dir(),
            "mode": format!("{:o}", meta.permissions().mode() & 0o7777),
            "sourceFile": std::fs::read_link(path).ok().map(|p| p.display().to_string()),
        }),
        Err(e) => json!({"error": format!("stat {path}: {e}")}),
    }
}

fn mounts() -> Value {
    // /proc/self/mounts: device, path, type, options per line.
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some(json!({
                "device": fields.next()?,
                "path": fields.next()?,
                "type": fields.next()?,
                "options": fields.next()?.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect()
}

fn user() -> Value {
    // SAFETY: these calls have no preconditions and cannot fail.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    let cwd = std::env::current_dir().map(|p| p.display().to_string());
    json!({
        "uid": uid, "euid": euid, "gid": gid, "egid": egid,
        "cwd": {"directory": cwd.as_ref().ok(), "error": cwd.as_ref().err().map(ToString::to_string)},
    })
}

fn runtime_info(req: &Request) -> Value {
    let envs: Map<String, Value> = std::env::vars()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let files: Map<String, Value> = FILES
        .iter()
        .map(|path| (path.to_string(), file_info(path)))
        .collect();
    let headers: Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                json!([String::from_utf8_lossy(v.as_bytes())]),
            )
        })
        .collect();
    json!({
        "host": {
            "envs": envs,
            "args": std::env::args().collect::<Vec<_>>(),
            "user": user(),
            "mounts": mounts(),
            "files": files,
        },
        "request": {
            "uri": req.uri().to_string(),
            // Go's Request.Host, which Knative's image reports: the Host
            // header, or over HTTP/2 the `:authority`.
            "host": req
                .headers()
                .get("host")
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
                .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned())),
            "method": req.method().as_str(),
            "headers": headers,
        },
    })
}

async fn handle(req: Request) -> okonomi::Response {
    if req.uri().path() == "/file" {
        let query = req.uri().query().unwrap_or_default();
        let Some(path) = query_value(query, "path") else {
            return (StatusCode::BAD_REQUEST, "give ?path=ABSOLUTE_PATH\n").into_response();
        };
        return match tokio::fs::read(&path).await {
            Ok(bytes) => bytes.into_response(),
            Err(e) => (StatusCode::NOT_FOUND, format!("reading {path}: {e}\n")).into_response(),
        };
    }
    let body = runtime_info(&req).to_string();
    ([("content-type", "application/json")], body).into_response()
}

#[tokio::main]
async fn main() -> Result<(), okonomi::Error> {
    okonomi::serve(okonomi::handler(handle)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(
            query_value("a=1&path=%2Fetc%2Fsecret%2Fpassword", "path").as_deref(),
            Some("/etc/secret/password")
        );
        assert_eq!(
            query_value("path=a+b%zz", "path").as_deref(),
            Some("a b%zz")
        );
        assert_eq!(query_value("a=1", "path"), None);
    }
}
