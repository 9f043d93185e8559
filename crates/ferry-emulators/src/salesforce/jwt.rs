//! RS256 JSON Web Tokens for the JWT bearer flow: PEM keys and certificates, verification (the
//! emulator) and signing (tests and clients).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The DER blocks of a PEM text, with their labels (`CERTIFICATE`, `PUBLIC KEY`, …).
pub fn pem_blocks(pem: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut label: Option<String> = None;
    let mut body = String::new();
    for line in pem.lines() {
        let line = line.trim();
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            label = Some(l.to_string());
            body.clear();
        } else if line.starts_with("-----END ") {
            if let Some(l) = label.take()
                && let Ok(der) = STANDARD.decode(body.as_bytes())
            {
                out.push((l, der));
            }
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    out
}

/// One DER element at the start of `der`: (tag, header length, content length).
fn tlv(der: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *der.first()?;
    let first = *der.get(1)? as usize;
    if first < 0x80 {
        return Some((tag, 2, first));
    }
    let n = first & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *der.get(2 + i)? as usize;
    }
    Some((tag, 2 + n, len))
}

/// The `subjectPublicKeyInfo` of an X.509 certificate.
fn spki_of_certificate(cert: &[u8]) -> Option<&[u8]> {
    let (_, h, _) = tlv(cert)?; // Certificate
    let tbs_all = cert.get(h..)?;
    let (_, th, tlen) = tlv(tbs_all)?; // TBSCertificate
    let mut rest = tbs_all.get(th..th + tlen)?;
    let skip = |rest: &mut &[u8]| -> Option<()> {
        let (_, h, l) = tlv(rest)?;
        *rest = rest.get(h + l..)?;
        Some(())
    };
    if rest.first() == Some(&0xA0) {
        skip(&mut rest)?; // version
    }
    for _ in 0..5 {
        skip(&mut rest)?; // serial, signature, issuer, validity, subject
    }
    let (_, h, l) = tlv(rest)?;
    rest.get(..h + l)
}

/// The public key (DER, SubjectPublicKeyInfo or RSAPublicKey) of a PEM certificate or public key.
pub fn public_key_der(pem: &str) -> Result<Vec<u8>, String> {
    for (label, der) in pem_blocks(pem) {
        match label.as_str() {
            "CERTIFICATE" => {
                return spki_of_certificate(&der)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| "the certificate does not parse".to_string());
            }
            "PUBLIC KEY" | "RSA PUBLIC KEY" => return Ok(der),
            _ => {}
        }
    }
    Err("no CERTIFICATE or PUBLIC KEY block in the PEM text".into())
}

/// Checks an RS256 JWT's signature with `public_key_der`; returns its claims.
pub fn verify(assertion: &str, public_key_der: &[u8]) -> Result<Value, &'static str> {
    let mut parts = assertion.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT");
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad header")?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("alg must be RS256");
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "bad signature encoding")?;
    UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public_key_der)
        .verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| "signature does not verify")?;
    URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad claims")
}

/// Signs `claims` as an RS256 JWT with a PEM private key (`PRIVATE KEY` or `RSA PRIVATE KEY`).
pub fn sign(private_key_pem: &str, claims: &Value) -> Result<String, String> {
    let (label, der) = pem_blocks(private_key_pem)
        .into_iter()
        .find(|(l, _)| l.ends_with("PRIVATE KEY"))
        .ok_or("no PRIVATE KEY block in the PEM text")?;
    let key = if label == "RSA PRIVATE KEY" {
        RsaKeyPair::from_der(&der)
    } else {
        RsaKeyPair::from_pkcs8(&der)
    }
    .map_err(|e| format!("not an RSA private key: {e}"))?;
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "signing failed".to_string())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// A new 2048-bit RSA key pair as PEM: (`PRIVATE KEY` in PKCS#8, `PUBLIC KEY`), for tests.
pub fn generate_key_pair() -> Result<(String, String), String> {
    use aws_lc_rs::encoding::AsDer;
    let key = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| "key generation failed".to_string())?;
    let private = key
        .as_der()
        .map_err(|_| "cannot encode the private key".to_string())?;
    let public = key
        .public_key()
        .as_der()
        .map_err(|_| "cannot encode the public key".to_string())?;
    Ok((
        pem("PRIVATE KEY", private.as_ref()),
        pem("PUBLIC KEY", public.as_ref()),
    ))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_another_key() {
        let (private, public) = generate_key_pair().unwrap();
        let (_, other) = generate_key_pair().unwrap();
        let jwt = sign(&private, &json!({"iss": "x", "exp": 1})).unwrap();
        let claims = verify(&jwt, &public_key_der(&public).unwrap()).unwrap();
        assert_eq!(claims["iss"], "x");
        assert!(verify(&jwt, &public_key_der(&other).unwrap()).is_err());
        let mut tampered = jwt.clone();
        tampered.insert(jwt.find('.').unwrap() + 2, 'A');
        assert!(verify(&tampered, &public_key_der(&public).unwrap()).is_err());
    }
}
