//! `--tls`: HTTPS with a generated certificate that clients trust as their CA.

use ferry_emulators::salesforce::{EmulatorConfig, SalesforceEmulator, tls};

#[tokio::test]
async fn serves_https_with_a_generated_certificate() {
    let material = tls::self_signed(&["localhost"], &["127.0.0.1".parse().unwrap()]).unwrap();
    assert!(material.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let emu = SalesforceEmulator::new(EmulatorConfig {
        tls: true,
        ..EmulatorConfig::default()
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let cert_pem = material.cert_pem.clone();
    let server = tokio::spawn(async move {
        emu.serve_tls(listener, &material, async move {
            let _ = stopped.await;
        })
        .await
    });
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let r = client
            .get(format!("https://{host}:{port}/services/data/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{host}");
    }
    // The token answer's instance_url is https.
    let grant: serde_json::Value = client
        .post(format!("https://127.0.0.1:{port}/__emulator/oauth/tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(grant["instance_url"], format!("https://127.0.0.1:{port}"));
    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([])
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("https://127.0.0.1:{port}/services/data/"))
            .send()
            .await
            .is_err()
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
