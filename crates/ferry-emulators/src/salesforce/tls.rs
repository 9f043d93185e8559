//! HTTPS for the emulator (`ferry emulate salesforce --tls`): a self-signed ECDSA P-256
//! certificate made at start for `localhost` and `127.0.0.1`, and a TLS accept loop, because
//! common Salesforce clients (simple-salesforce) only speak `https://`.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

/// A certificate and its key.
pub struct TlsMaterial {
    /// The certificate, PEM: clients trust it as their CA.
    pub cert_pem: String,
    cert_der: Vec<u8>,
    key_pkcs8: Vec<u8>,
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut stack = vec![(a & 0x7f) as u8];
        let mut v = a >> 7;
        while v > 0 {
            stack.push(((v & 0x7f) as u8) | 0x80);
            v >>= 7;
        }
        stack.reverse();
        body.extend(stack);
    }
    der(0x06, &body)
}

fn utc_time(ts: jiff::Timestamp) -> Vec<u8> {
    der(0x17, ts.strftime("%y%m%d%H%M%SZ").to_string().as_bytes())
}

fn name(cn: &str) -> Vec<u8> {
    seq(&[der(
        0x31,
        &seq(&[oid(&[2, 5, 4, 3]), der(0x0c, cn.as_bytes())]),
    )])
}

/// A self-signed certificate for `dns_names` and `ips`, valid from a day ago for a year.
pub fn self_signed(dns_names: &[&str], ips: &[IpAddr]) -> Result<TlsMaterial, String> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| "cannot generate a key".to_string())?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|_| "cannot read the generated key".to_string())?;
    let ecdsa_sha256 = seq(&[oid(&[1, 2, 840, 10045, 4, 3, 2])]);
    let spki = seq(&[
        seq(&[
            oid(&[1, 2, 840, 10045, 2, 1]),
            oid(&[1, 2, 840, 10045, 3, 1, 7]),
        ]),
        der(0x03, &[&[0u8][..], key.public_key().as_ref()].concat()),
    ]);
    let mut alt_names = Vec::new();
    for d in dns_names {
        alt_names.extend(der(0x82, d.as_bytes()));
    }
    for ip in ips {
        let bytes = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        alt_names.extend(der(0x87, &bytes));
    }
    let extensions = seq(&[
        seq(&[oid(&[2, 5, 29, 17]), der(0x04, &der(0x30, &alt_names))]),
        // basicConstraints, critical, not a CA.
        seq(&[
            oid(&[2, 5, 29, 19]),
            der(0x01, &[0xff]),
            der(0x04, &seq(&[])),
        ]),
    ]);
    let now = jiff::Timestamp::now();
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| "no randomness".to_string())?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let subject = name("Ferry Salesforce emulator");
    let tbs = seq(&[
        der(0xa0, &der(0x02, &[2])),
        der(0x02, &serial),
        ecdsa_sha256.clone(),
        subject.clone(),
        seq(&[
            utc_time(now - jiff::SignedDuration::from_hours(24)),
            utc_time(now + jiff::SignedDuration::from_hours(24 * 365)),
        ]),
        subject,
        spki,
        der(0xa3, &extensions),
    ]);
    let sig = key
        .sign(&rng, &tbs)
        .map_err(|_| "cannot sign the certificate".to_string())?;
    let cert = seq(&[
        tbs,
        ecdsa_sha256,
        der(0x03, &[&[0u8][..], sig.as_ref()].concat()),
    ]);
    let b64 = STANDARD.encode(&cert);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    Ok(TlsMaterial {
        cert_pem: pem,
        cert_der: cert,
        key_pkcs8: pkcs8.as_ref().to_vec(),
    })
}

/// Serves `app` over TLS on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    material: &TlsMaterial,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(material.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(material.key_pkcs8.clone())),
        )
        .map_err(std::io::Error::other)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
