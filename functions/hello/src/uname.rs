//! The seed's line: uname(2)'s five fields formatted as Python prints the tuple
//! `os.uname()` gave (`('Linux', 'node', 'release', 'version', 'machine')`).
//!
//! bench/runtime's bare hyper baseline includes this file too, so both sides of
//! the benchmark do the same work per request.

/// `Hello Container World! (...)`, or a line saying why uname(2) failed.
pub fn hello_line() -> String {
    let mut line = String::with_capacity(160);
    line.push_str("Hello Container World! ");
    // SAFETY: utsname is plain data; uname(2) fills it or fails.
    let mut buf: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: buf is a valid, writable utsname.
    if unsafe { libc::uname(&mut buf) } != 0 {
        line.push_str(&format!(
            "(uname failed: {})",
            std::io::Error::last_os_error()
        ));
        return line;
    }
    line.push('(');
    for (i, field) in [
        &buf.sysname[..],
        &buf.nodename,
        &buf.release,
        &buf.version,
        &buf.machine,
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            line.push_str(", ");
        }
        let len = field.iter().position(|&c| c == 0).unwrap_or(field.len());
        // SAFETY: c_char and u8 have the same size and alignment; len is in bounds.
        let bytes = unsafe { std::slice::from_raw_parts(field.as_ptr().cast::<u8>(), len) };
        // Python decodes with surrogateescape; uname fields are ASCII in practice.
        push_python_repr(&mut line, &String::from_utf8_lossy(bytes));
    }
    line.push(')');
    line
}

/// Appends `repr()` of a Python str: single quotes unless the text holds a
/// single quote and no double quote; backslash escapes for the quote,
/// backslashes and control characters.
pub fn push_python_repr(out: &mut String, text: &str) {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    let plain = !text
        .chars()
        .any(|c| c == quote || c == '\\' || (c as u32) < 0x20 || c as u32 == 0x7f);
    if plain {
        out.push_str(text);
    } else {
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
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::push_python_repr;

    fn repr(text: &str) -> String {
        let mut out = String::new();
        push_python_repr(&mut out, text);
        out
    }

    #[test]
    fn repr_matches_python_quoting() {
        assert_eq!(repr("Linux"), "'Linux'");
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(repr("back\\slash\n"), "'back\\\\slash\\n'");
        assert_eq!(repr("bell\u{7}"), "'bell\\x07'");
    }
}
