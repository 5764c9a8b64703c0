//! Small reference parsers for what the exporter writes: RFC 5424 and CEF.
//! Test code only — Pumpward never parses syslog or CEF from outside — so
//! they panic-free return `Err(String)` and favour clarity over speed.

#![allow(dead_code)]

/// An RFC 5424 message, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    pub pri: u16,
    pub version: u8,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    pub sd_id: String,
    pub params: Vec<(String, String)>,
    pub bom: bool,
    pub msg: String,
}

fn token<'a>(s: &mut &'a str, what: &str) -> Result<&'a str, String> {
    let (t, rest) = s
        .split_once(' ')
        .ok_or_else(|| format!("no space after {what}"))?;
    *s = rest;
    Ok(t)
}

/// Parses one RFC 5424 message with exactly one SD element.
pub fn parse_5424(mut s: &str) -> Result<Syslog, String> {
    let rest = s.strip_prefix('<').ok_or("no '<'")?;
    let (pri, rest) = rest.split_once('>').ok_or("no '>'")?;
    let pri: u16 = pri.parse().map_err(|_| "PRI not a number")?;
    s = rest;
    let version = token(&mut s, "version")?
        .parse()
        .map_err(|_| "bad version")?;
    let timestamp = token(&mut s, "timestamp")?.to_owned();
    let hostname = token(&mut s, "hostname")?.to_owned();
    let app_name = token(&mut s, "app-name")?.to_owned();
    let procid = token(&mut s, "procid")?.to_owned();
    let msgid = token(&mut s, "msgid")?.to_owned();
    let rest = s.strip_prefix('[').ok_or("no SD element")?;
    let (sd_id, mut rest) = rest
        .split_once([' ', ']'])
        .map(|(a, _)| (a, &rest[a.len()..]))
        .ok_or("unterminated SD-ID")?;
    let mut params = Vec::new();
    loop {
        if let Some(r) = rest.strip_prefix(']') {
            rest = r;
            break;
        }
        let r = rest.strip_prefix(' ').ok_or("expected ' ' or ']'")?;
        let (name, r) = r.split_once("=\"").ok_or("param without =\"")?;
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated param value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, c @ ('"' | '\\' | ']'))) => value.push(c),
                    // RFC 5424: a backslash before anything else is kept.
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c)
                    }
                    None => return Err("backslash at the end".into()),
                },
                Some((_, ']')) => return Err("unescaped ']' in a value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        params.push((name.to_owned(), value));
        rest = &r[end + 1..];
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before MSG")?;
    let (bom, msg) = match rest.strip_prefix('\u{FEFF}') {
        Some(m) => (true, m),
        None => (false, rest),
    };
    Ok(Syslog {
        pri,
        version,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd_id: sd_id.to_owned(),
        params,
        bom,
        msg: msg.to_owned(),
    })
}

/// A CEF message, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cef {
    pub version: String,
    pub vendor: String,
    pub product: String,
    pub device_version: String,
    pub signature_id: String,
    pub name: String,
    pub severity: String,
    pub extension: Vec<(String, String)>,
}

/// Parses `CEF:0|…|…|…|…|…|sev|ext`.
pub fn parse_cef(s: &str) -> Result<Cef, String> {
    let s = s.strip_prefix("CEF:").ok_or("no CEF: prefix")?;
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = s.char_indices();
    let mut ext_start = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '\\')) => cur.push('\\'),
                Some((_, '|')) => cur.push('|'),
                Some((_, 'n')) => cur.push('\n'),
                Some((_, 'r')) => cur.push('\r'),
                other => return Err(format!("bad header escape {other:?}")),
            },
            '|' => {
                header.push(std::mem::take(&mut cur));
                if header.len() == 7 {
                    ext_start = Some(i + 1);
                    break;
                }
            }
            c => cur.push(c),
        }
    }
    let ext_start = ext_start.ok_or("fewer than 8 parts")?;
    let extension = parse_extension(&s[ext_start..])?;
    let mut h = header.into_iter();
    let mut next = || h.next().unwrap_or_default();
    Ok(Cef {
        version: next(),
        vendor: next(),
        product: next(),
        device_version: next(),
        signature_id: next(),
        name: next(),
        severity: next(),
        extension,
    })
}

/// `k=v k=v …`: a key is the token before an unescaped `=`; a value runs to
/// the space before the next key.
fn parse_extension(s: &str) -> Result<Vec<(String, String)>, String> {
    // Positions of unescaped '='.
    let b = s.as_bytes();
    let mut eqs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'=' => {
                eqs.push(i);
                i += 1
            }
            _ => i += 1,
        }
    }
    let mut out = Vec::new();
    let mut key_start = 0;
    for (n, &eq) in eqs.iter().enumerate() {
        let key = &s[key_start..eq];
        if key.is_empty() || key.contains(' ') {
            return Err(format!("bad key {key:?}"));
        }
        let value_end = match eqs.get(n + 1) {
            Some(&next_eq) => s[..next_eq].rfind(' ').ok_or("no space before a key")?,
            None => s.len(),
        };
        if value_end < eq + 1 {
            return Err("key without value separator".into());
        }
        out.push((key.to_owned(), unescape_ext(&s[eq + 1..value_end])?));
        key_start = value_end + 1;
    }
    Ok(out)
}

fn unescape_ext(v: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('=') => out.push('='),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => return Err(format!("bad extension escape {other:?}")),
        }
    }
    Ok(out)
}

/// Splits a stream of octet-counted frames (`LEN SP MSG`…).
pub fn split_frames(mut b: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let sp = b.iter().position(|&c| c == b' ').ok_or("no SP")?;
        let len: usize = std::str::from_utf8(&b[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad LEN")?;
        let end = sp + 1 + len;
        out.push(b.get(sp + 1..end).ok_or("short frame")?);
        b = &b[end..];
    }
    Ok(out)
}
