//! The access line: one JSON line per request, in the shape tracing's JSON
//! formatter gives every other line (`timestamp`, `level`, the fields,
//! `target`), rendered straight into a pre-sized buffer and appended to the
//! batch writer. Going through tracing's generic formatter cost about a fifth
//! of a keep-alive request's instructions; this is a few hundred.
//!
//! Without the server's logging installed (CLI commands, benches) the line
//! goes through tracing like any other event. Either way it is written only
//! when the filter lets `target: access` at `info` through.

use std::sync::OnceLock;
use std::time::Duration;

use super::batch::BatchWriter;

/// Where access lines go when the server's logging is installed.
static SINK: OnceLock<BatchWriter> = OnceLock::new();

/// Sends access lines straight to `writer` from now on.
pub(super) fn install(writer: BatchWriter) {
    let _ = SINK.set(writer);
}

/// One request, as the access line records it. No secrets: the client id,
/// never its secret, and no header values but the request id.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    /// The request id (also sent back as `X-Request-Id`).
    pub request_id: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The route's label, as in the metrics.
    pub route: &'a str,
    /// The response status.
    pub status: u16,
    /// Time from the request's arrival to its response, in microseconds.
    pub latency_us: u64,
    /// The client a token request authenticated as, or "".
    pub client_id: &'a str,
    /// Why a request was refused when the caller is not told, or "".
    pub reason: &'a str,
    /// The `jti` of the token a token exchange started from, or "".
    pub subject_jti: &'a str,
    /// The caller's address, as text.
    pub peer: &'a str,
}

/// Logs `line` if the filter lets access lines through.
pub fn log(line: &AccessLine<'_>) {
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    match SINK.get() {
        Some(sink) => {
            let mut out = Vec::with_capacity(LINE_CAPACITY);
            line.render(crate::clock::since_unix_epoch(), &mut out);
            sink.append(&out);
        }
        None => tracing::info!(
            target: "access",
            request_id = line.request_id,
            method = line.method,
            route = line.route,
            status = line.status,
            latency_us = line.latency_us,
            client_id = line.client_id,
            reason = line.reason,
            subject_jti = line.subject_jti,
            peer = line.peer,
        ),
    }
}

/// Room for a typical line without growing: the fixed keys and timestamp
/// take about 150 bytes.
const LINE_CAPACITY: usize = 320;

impl AccessLine<'_> {
    /// Appends the JSON line (with its newline) for a request logged at
    /// `now` (time since the Unix epoch).
    pub fn render(&self, now: Duration, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(now, out);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"request_id\":");
        string(self.request_id, out);
        out.extend_from_slice(b",\"method\":");
        string(self.method, out);
        out.extend_from_slice(b",\"route\":");
        string(self.route, out);
        out.extend_from_slice(b",\"status\":");
        number(u64::from(self.status), out);
        out.extend_from_slice(b",\"latency_us\":");
        number(self.latency_us, out);
        out.extend_from_slice(b",\"client_id\":");
        string(self.client_id, out);
        out.extend_from_slice(b",\"reason\":");
        string(self.reason, out);
        out.extend_from_slice(b",\"subject_jti\":");
        string(self.subject_jti, out);
        out.extend_from_slice(b",\"peer\":");
        string(self.peer, out);
        out.extend_from_slice(b",\"target\":\"access\"}\n");
    }
}

/// `now` as RFC 3339 in UTC with microseconds, as tracing writes it:
/// `2026-11-30T08:28:25.957558Z`.
fn timestamp(now: Duration, out: &mut Vec<u8>) {
    let secs = now.as_secs();
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = crate::clock::civil_from_days(i64::try_from(days).unwrap_or(0));
    padded(year.unsigned_abs(), 4, out);
    out.push(b'-');
    padded(month.unsigned_abs(), 2, out);
    out.push(b'-');
    padded(day.unsigned_abs(), 2, out);
    out.push(b'T');
    padded(of_day / 3600, 2, out);
    out.push(b':');
    padded(of_day / 60 % 60, 2, out);
    out.push(b':');
    padded(of_day % 60, 2, out);
    out.push(b'.');
    padded(u64::from(now.subsec_micros()), 6, out);
    out.push(b'Z');
}

/// `n` in decimal, at least `width` digits (zero-padded).
fn padded(n: u64, width: usize, out: &mut Vec<u8>) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = i.min(digits.len() - width.min(digits.len()));
    out.extend_from_slice(&digits[start..]);
}

/// `n` in decimal.
fn number(n: u64, out: &mut Vec<u8>) {
    padded(n, 1, out);
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain..i]);
        out.extend_from_slice(escape);
        plain = i + 1;
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(client_id: &'a str, reason: &'a str) -> AccessLine<'a> {
        AccessLine {
            request_id: "c02c77da-000000000003",
            method: "POST",
            route: "validate",
            status: 401,
            latency_us: 1234,
            client_id,
            reason,
            subject_jti: "0b4f6c1e",
            peer: "127.0.0.1",
        }
    }

    fn rendered(line: &AccessLine<'_>, now: Duration) -> String {
        let mut out = Vec::new();
        line.render(now, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_line_has_the_fields_in_the_order_tracing_writes_them() {
        // 2026-11-30T08:28:25.957558Z
        let now = Duration::new(1_796_027_305, 957_558_123);
        assert_eq!(
            rendered(&line("billing", "expired"), now),
            "{\"timestamp\":\"2026-11-30T08:28:25.957558Z\",\"level\":\"INFO\",\
             \"request_id\":\"c02c77da-000000000003\",\"method\":\"POST\",\
             \"route\":\"validate\",\"status\":401,\"latency_us\":1234,\
             \"client_id\":\"billing\",\"reason\":\"expired\",\"subject_jti\":\"0b4f6c1e\",\
             \"peer\":\"127.0.0.1\",\
             \"target\":\"access\"}\n"
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "plain",
            "",
            "quote\" backslash\\ slash/",
            "\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
            "non-ASCII é ✓",
        ] {
            let mut out = Vec::new();
            string(text, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn every_line_is_one_json_object_with_the_values_given() {
        let tricky = line("a\"b\\c\nd", "");
        let text = rendered(&tricky, Duration::new(0, 0));
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["client_id"], "a\"b\\c\nd");
        assert_eq!(value["timestamp"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(value["status"], 401);
        assert_eq!(value["latency_us"], 1234);
    }
}
