//! Reads a certificate's `notAfter` from its DER, for the expiry metric and
//! alert. A minimal walk over the X.509 structure: no parsing crate needed
//! for one field.

/// Why the expiry could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate")]
pub struct MalformedCertificate;

/// One DER element: its tag and contents; advances `input` past it.
fn element<'a>(input: &mut &'a [u8]) -> Result<(u8, &'a [u8]), MalformedCertificate> {
    let (&tag, rest) = input.split_first().ok_or(MalformedCertificate)?;
    let (&first, mut rest) = rest.split_first().ok_or(MalformedCertificate)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(MalformedCertificate);
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    if rest.len() < len {
        return Err(MalformedCertificate);
    }
    let (contents, after) = rest.split_at(len);
    *input = after;
    Ok((tag, contents))
}

/// The certificate's `notAfter` as Unix seconds.
pub fn not_after(der: &[u8]) -> Result<i64, MalformedCertificate> {
    const SEQUENCE: u8 = 0x30;
    let mut input = der;
    let (SEQUENCE, mut cert) = element(&mut input)? else {
        return Err(MalformedCertificate);
    };
    let (SEQUENCE, mut tbs) = element(&mut cert)? else {
        return Err(MalformedCertificate);
    };
    if tbs.first() == Some(&0xa0) {
        element(&mut tbs)?; // [0] version
    }
    element(&mut tbs)?; // serial number
    element(&mut tbs)?; // signature algorithm
    element(&mut tbs)?; // issuer
    let (SEQUENCE, mut validity) = element(&mut tbs)? else {
        return Err(MalformedCertificate);
    };
    element(&mut validity)?; // notBefore
    let (tag, time) = element(&mut validity)?;
    parse_time(tag, time)
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, text: &[u8]) -> Result<i64, MalformedCertificate> {
    let text = std::str::from_utf8(text).map_err(|_| MalformedCertificate)?;
    let text = text.strip_suffix('Z').ok_or(MalformedCertificate)?;
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i64 = text[..2].parse().map_err(|_| MalformedCertificate)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 14) => (
            text[..4].parse().map_err(|_| MalformedCertificate)?,
            &text[4..],
        ),
        _ => return Err(MalformedCertificate),
    };
    let field = |i: usize| -> Result<i64, MalformedCertificate> {
        rest.get(i..i + 2)
            .and_then(|s| s.parse().ok())
            .ok_or(MalformedCertificate)
    };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_expiry_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 15);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        // 2031-07-15T00:00:00Z
        assert_eq!(not_after(cert.der()).unwrap(), 1_941_840_000);
    }

    #[test]
    fn dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(parse_time(0x17, b"491231235959Z").unwrap(), 2_524_607_999);
        assert_eq!(
            parse_time(0x18, b"40960101000000Z").unwrap(),
            67_090_118_400
        );
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x05\x30\x00",
            b"\x30\x84\xff\xff\xff\xff",
        ] {
            assert_eq!(not_after(bad), Err(MalformedCertificate));
        }
    }
}
