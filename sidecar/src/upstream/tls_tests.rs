//! CA texts read and refused, trust merged and keyed, TLS failures named.

use super::test_ca_pem as ca_pem;
use super::*;
use rcgen::KeyPair;

#[test]
fn a_certificate_and_a_commented_bundle_parse() {
    let one = ca_pem("one");
    assert_eq!(parse_pem(one.as_bytes()).unwrap().len(), 1);
    // Bundles carry comments and blank lines around their blocks, and CRLF line ends.
    let bundle = format!(
        "# Internal CA\n{one}\n# Its successor\r\n{}",
        ca_pem("two").replace('\n', "\r\n")
    );
    let certs = parse_pem(bundle.as_bytes()).unwrap();
    assert_eq!(certs.len(), 2);
    assert_ne!(certs[0], certs[1]);
}

#[test]
fn texts_without_a_certificate_are_refused_naming_what_they_hold() {
    assert_eq!(
        parse_pem(b""),
        Err(PemError::NoCertificate { found: vec![] })
    );
    assert_eq!(
        parse_pem(b"not a certificate at all\n"),
        Err(PemError::NoCertificate { found: vec![] })
    );
    let key = KeyPair::generate().unwrap();
    let public = key.public_key_pem();
    let err = parse_pem(public.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "holds no PEM certificate (-----BEGIN CERTIFICATE-----); found PublicKey"
    );
}

#[test]
fn private_keys_are_refused_even_beside_certificates() {
    let key = KeyPair::generate().unwrap();
    let text = format!("{}{}", ca_pem("ca"), key.serialize_pem());
    assert_eq!(parse_pem(text.as_bytes()), Err(PemError::PrivateKey));
}

#[test]
fn broken_blocks_and_junk_certificates_are_refused() {
    let good = ca_pem("ca");
    // Cut before its end line.
    let cut = &good[..good.len() / 2];
    assert!(matches!(
        parse_pem(cut.as_bytes()),
        Err(PemError::Syntax(_))
    ));
    // Valid base64 that is no certificate.
    let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let err = parse_pem(format!("{good}{junk}").as_bytes()).unwrap_err();
    assert!(
        matches!(err, PemError::BadCertificate { index: 2, .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("certificate 2 of the text"),
        "{err}"
    );
}

#[test]
fn oversized_texts_are_refused_before_reading() {
    let big = vec![b'#'; MAX_PEM_BYTES + 1];
    assert_eq!(parse_pem(&big), Err(PemError::TooLarge(MAX_PEM_BYTES + 1)));
}

#[test]
fn trust_keys_ignore_order_and_repeats() {
    let a = parse_pem(ca_pem("a").as_bytes()).unwrap();
    let b = parse_pem(ca_pem("b").as_bytes()).unwrap();
    let trust = |certs: Vec<CertificateDer<'static>>, system_roots| Trust {
        extra: certs,
        system_roots,
    };
    let ab = trust([a.clone(), b.clone()].concat(), false);
    let ba = trust([b.clone(), a.clone(), a.clone()].concat(), false);
    assert_eq!(ab.key(), ba.key());
    assert_ne!(ab.key(), trust(a.clone(), false).key());
    assert_ne!(ab.key(), trust([a.clone(), b].concat(), true).key());
    assert!(Trust::default().is_web_only());
    let merged = trust(a.clone(), false).with(&trust(a.clone(), true));
    assert_eq!(merged, trust(a, true));
    assert_eq!(
        merged.summary(),
        "the web roots, 1 extra CA certificate, the system store"
    );
}

#[test]
fn the_roots_are_the_web_roots_and_the_extras() {
    let a = parse_pem(ca_pem("a").as_bytes()).unwrap();
    let web = Trust::default().roots().len();
    assert_eq!(web, webpki_roots::TLS_SERVER_ROOTS.len());
    let trust = Trust {
        extra: a,
        system_roots: false,
    };
    assert_eq!(trust.roots().len(), web + 1);
    assert!(trust.client_config().is_ok());
}

#[test]
fn tls_failures_are_named_with_what_was_trusted() {
    let wrapped = |e: rustls::Error| std::io::Error::other(e);
    let unknown = wrapped(rustls::Error::InvalidCertificate(
        CertificateError::UnknownIssuer,
    ));
    let said = describe_failure(&unknown, "the web roots").unwrap();
    assert!(
        said.starts_with("TLS certificate not trusted: ")
            && said.contains("(the web roots; unknown issuer)")
            && said.contains("tls.caSecretRef")
            && said.contains("--ca-file"),
        "{said}"
    );
    let expired = wrapped(rustls::Error::InvalidCertificate(CertificateError::Expired));
    assert!(
        describe_failure(&expired, "")
            .unwrap()
            .starts_with("TLS certificate expired")
    );
    let plain = std::io::Error::other("connection refused");
    assert_eq!(describe_failure(&plain, ""), None);
}
