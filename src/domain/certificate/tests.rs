use rcgen::{CertificateParams, DnType, KeyPair, SanType};

use super::*;

fn certificate() -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["svc.example.test".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example, Inc");
    params
        .distinguished_name
        .push(DnType::CommonName, "billing");
    params.subject_alt_names.extend([
        SanType::URI("spiffe://example.test/billing".try_into().unwrap()),
        SanType::IpAddress("10.1.2.3".parse().unwrap()),
        SanType::Rfc822Name("billing@example.test".try_into().unwrap()),
    ]);
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn pki(kind: &str, value: &str) -> TlsClientAuth {
    TlsClientAuth::from_parts(kind, value).unwrap()
}

#[test]
fn each_subject_name_kind_matches_only_a_trusted_chain() {
    let der = certificate();
    let trusted = PresentedCertificate::from_der(&der, true).unwrap();
    let untrusted = PresentedCertificate::from_der(&der, false).unwrap();
    for (kind, value) in [
        ("subject_dn", "O=Example\\, Inc,CN=billing"),
        ("subject_dn", "CN=billing, O=Example\\, Inc"),
        ("san_dns", "SVC.example.test"),
        ("san_uri", "spiffe://example.test/billing"),
        ("san_ip", "10.1.2.3"),
        ("san_email", "billing@example.test"),
    ] {
        let registration = pki(kind, value);
        assert!(registration.accepts(&trusted), "{kind} {value}");
        assert!(!registration.accepts(&untrusted), "{kind} {value}");
    }
    for (kind, value) in [
        ("subject_dn", "CN=billing"),
        ("subject_dn", "CN=billing,O=Example"),
        ("san_dns", "other.example.test"),
        ("san_uri", "spiffe://example.test/other"),
        ("san_ip", "10.1.2.4"),
        ("san_email", "other@example.test"),
    ] {
        assert!(!pki(kind, value).accepts(&trusted), "{kind} {value}");
    }
}

#[test]
fn a_self_signed_registration_matches_that_certificate_only() {
    let der = certificate();
    let presented = PresentedCertificate::from_der(&der, false).unwrap();
    let registration = pki("self_signed", &certificate_thumbprint(&der));
    assert!(registration.accepts(&presented));
    let other = PresentedCertificate::from_der(&certificate(), false).unwrap();
    assert!(!registration.accepts(&other));
}

#[test]
fn registrations_round_trip_and_bad_values_are_refused() {
    let der = certificate();
    for (kind, value) in [
        ("subject_dn", "CN=a"),
        ("san_ip", "::1"),
        ("self_signed", certificate_thumbprint(&der).as_str()),
    ] {
        let registration = pki(kind, value);
        assert_eq!(registration.kind(), kind);
        assert_eq!(
            TlsClientAuth::from_parts(registration.kind(), &registration.value()),
            Ok(registration)
        );
    }
    for (kind, value) in [
        ("subject_dn", "no equals sign"),
        ("san_ip", "host.test"),
        ("san_dns", ""),
        ("self_signed", "abc"),
    ] {
        assert!(matches!(
            TlsClientAuth::from_parts(kind, value),
            Err(RegistrationError::BadValue(_))
        ));
    }
    assert!(matches!(
        TlsClientAuth::from_parts("x509", "v"),
        Err(RegistrationError::UnknownKind(_))
    ));
    assert_eq!(
        PresentedCertificate::from_der(b"not a certificate", true),
        None
    );
}
