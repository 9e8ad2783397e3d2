//! hello: the seed app of the GKE hands-on, as an okonomi function.
//!
//! `GET /` answers `Hello Container World! ('Linux', '<nodename>', '<release>',
//! '<version>', '<machine>')`, the line the hands-on's Flask app printed from
//! Python's `os.uname()`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use okonomi::{IntoResponse, Request};

/// Formats the five uname(2) fields as Python prints a tuple of strings.
fn uname_tuple() -> String {
    match uname() {
        Ok(fields) => {
            let quoted: Vec<String> = fields.iter().map(|f| python_str_repr(f)).collect();
            format!("({})", quoted.join(", "))
        }
        Err(error) => format!("(uname failed: {error})"),
    }
}

/// sysname, nodename, release, version, machine.
fn uname() -> std::io::Result<[String; 5]> {
    // SAFETY: utsname is plain data; uname(2) fills it or fails.
    let mut buf: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: buf is a valid, writable utsname.
    if unsafe { libc::uname(&mut buf) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let field = |raw: &[libc::c_char]| {
        let bytes: Vec<u8> = raw
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        // Python decodes with the filesystem encoding and surrogateescape; uname
        // fields are ASCII in practice.
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok([
        field(&buf.sysname),
        field(&buf.nodename),
        field(&buf.release),
        field(&buf.version),
        field(&buf.machine),
    ])
}

/// `repr()` of a Python str: single quotes unless the text holds a single quote
/// and no double quote; backslash escapes for quotes, backslashes and controls.
fn python_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

async fn hello(_req: Request) -> impl IntoResponse {
    format!("Hello Container World! {}", uname_tuple())
}

#[tokio::main]
async fn main() -> Result<(), okonomi::Error> {
    okonomi::serve(okonomi::handler(hello)).await
}

#[cfg(test)]
mod tests {
    use super::python_str_repr;

    #[test]
    fn repr_matches_python_quoting() {
        assert_eq!(python_str_repr("Linux"), "'Linux'");
        assert_eq!(python_str_repr("it's"), "\"it's\"");
        assert_eq!(python_str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(python_str_repr("back\\slash\n"), "'back\\\\slash\\n'");
    }
}
