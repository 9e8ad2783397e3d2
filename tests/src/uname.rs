//! The hello function's answer, computed here from uname(2) to compare with
//! what the deployed function says.

/// The five uname(2) fields: sysname, nodename, release, version, machine.
pub fn fields() -> anyhow::Result<[String; 5]> {
    // SAFETY: utsname is plain data; uname(2) fills it or fails.
    let mut buf: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: buf is a valid, writable utsname.
    if unsafe { libc::uname(&mut buf) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let field = |raw: &[libc::c_char]| {
        let bytes: Vec<u8> = raw
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
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

/// Splits `Hello Container World! ('Linux', 'node', 'rel', 'ver', 'mach')`
/// into its five fields (plain single-quoted strings, as uname's are).
pub fn parse_seed_line(line: &str) -> anyhow::Result<Vec<String>> {
    let line = line.trim_end();
    let tuple = line
        .strip_prefix("Hello Container World! (")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| anyhow::anyhow!("not the seed app's line: {line:?}"))?;
    let fields: Vec<String> = tuple
        .split("', '")
        .map(|f| f.trim_start_matches('\'').trim_end_matches('\'').to_owned())
        .collect();
    if fields.len() != 5 {
        anyhow::bail!(
            "expected five uname fields in {line:?}, found {}",
            fields.len()
        );
    }
    Ok(fields)
}
