//! TLS and mutual TLS over loopback with certificates made in the test
//! (rcgen): a CA, a server certificate for localhost and client certificates
//! from that CA and from a stranger's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::requests::{object_access, user};
use common::server::{TestServer, demo_engine, scratch_dir};
use permd::pb::authorizer_client::AuthorizerClient;
use permd::server::tls::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

struct Issued {
    cert_pem: String,
    key_pem: String,
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

fn issue(ca: &Ca, names: &[&str]) -> Issued {
    let params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The demo tenant served over TLS from `files`.
async fn serve(files: TlsFiles) -> TestServer {
    TestServer::builder(demo_engine())
        .tls(files.server_config().unwrap())
        .start()
        .await
}

async fn ask(channel: Result<Channel, tonic::transport::Error>) -> Result<(), String> {
    let channel = channel.map_err(|e| format!("connect: {e}"))?;
    AuthorizerClient::new(channel)
        .object_access(object_access(user("carol"), ""))
        .await
        .map(|_| ())
        .map_err(|s| format!("{s:?}"))
}

async fn connect(
    addr: SocketAddr,
    tls: Option<ClientTlsConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://localhost:{}", addr.port()))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    endpoint.connect().await
}

fn dir(name: &str) -> std::path::PathBuf {
    scratch_dir(&format!("tls-{name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_the_ca_and_refuses_plaintext() {
    let d = dir("tls");
    let ca = new_ca("permd test CA");
    let issued = issue(&ca, &["localhost"]);
    let server = serve(TlsFiles {
        cert: write(&d, "server.pem", &issued.cert_pem),
        key: write(&d, "server.key", &issued.key_pem),
        client_ca: None,
    })
    .await;
    let addr = server.addr;
    let trusting = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.cert.pem()))
        .domain_name("localhost");
    ask(connect(addr, Some(trusting)).await).await.unwrap();

    assert!(
        ask(connect(addr, None).await).await.is_err(),
        "plaintext must not be answered"
    );
    let stranger = new_ca("someone else");
    let distrusting = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(stranger.cert.pem()))
        .domain_name("localhost");
    assert!(
        ask(connect(addr, Some(distrusting)).await).await.is_err(),
        "a client that does not trust the server's CA must fail"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_named_ca() {
    let d = dir("mtls");
    let ca = new_ca("permd test CA");
    let issued = issue(&ca, &["localhost"]);
    let clients = new_ca("permd clients CA");
    let server = serve(TlsFiles {
        cert: write(&d, "server.pem", &issued.cert_pem),
        key: write(&d, "server.key", &issued.key_pem),
        client_ca: Some(write(&d, "clients.pem", &clients.cert.pem())),
    })
    .await;
    let addr = server.addr;
    let base = || {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.cert.pem()))
            .domain_name("localhost")
    };
    let good = issue(&clients, &["app"]);
    ask(connect(
        addr,
        Some(base().identity(Identity::from_pem(&good.cert_pem, &good.key_pem))),
    )
    .await)
    .await
    .unwrap();

    assert!(
        ask(connect(addr, Some(base())).await).await.is_err(),
        "no client certificate: refused"
    );
    let rogue = issue(&new_ca("rogue CA"), &["app"]);
    assert!(
        ask(connect(
            addr,
            Some(base().identity(Identity::from_pem(&rogue.cert_pem, &rogue.key_pem)))
        )
        .await)
        .await
        .is_err(),
        "a client certificate from another CA: refused"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn bad_tls_files_are_named_at_start() {
    let d = dir("bad");
    let not_pem = write(&d, "cert.pem", "hello");
    let err = TlsFiles {
        cert: not_pem.clone(),
        key: not_pem.clone(),
        client_ca: None,
    }
    .server_config()
    .unwrap_err()
    .to_string();
    assert!(err.contains("not PEM") && err.contains("cert.pem"), "{err}");
    let missing = TlsFiles {
        cert: d.join("nope.pem"),
        key: not_pem,
        client_ca: None,
    }
    .server_config()
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("cannot read TLS certificate") && missing.contains("nope.pem"),
        "{missing}"
    );
    std::fs::remove_dir_all(&d).ok();
}

/// `permd check` with --tls-ca, --tls-cert and --tls-key talks to a permd
/// that requires mutual TLS; without the client certificate it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_speaks_mutual_tls_with_its_tls_flags() {
    let d = dir("cli-mtls");
    let ca = new_ca("permd test CA");
    let clients = new_ca("permd clients");
    let server_cert = issue(&ca, &["localhost"]);
    let client = issue(&clients, &["client"]);
    let server = serve(TlsFiles {
        cert: write(&d, "server.pem", &server_cert.cert_pem),
        key: write(&d, "server.key", &server_cert.key_pem),
        client_ca: Some(write(&d, "clients.pem", &clients.cert.pem())),
    })
    .await;
    let ca_file = write(&d, "ca.pem", &ca.cert.pem());
    let cert = write(&d, "client.pem", &client.cert_pem);
    let key = write(&d, "client.key", &client.key_pem);
    let addr = format!("https://localhost:{}", server.addr.port());
    let check = move |with_identity: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_permd"));
        cmd.args([
            "check",
            "--addr",
            &addr,
            "--tls-ca",
            ca_file.to_str().unwrap(),
        ])
        .args(["--principal", "carol", "--demo-contacts", "10"]);
        if with_identity {
            cmd.args([
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ]);
        }
        cmd.output().unwrap()
    };
    let ok = tokio::task::spawn_blocking(move || (check(true), check(false)))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.0.stdout);
    assert!(
        ok.0.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.0.stderr)
    );
    assert!(stdout.contains("carol view on 10 contacts"), "{stdout}");
    assert!(
        !ok.1.status.success(),
        "no client certificate, yet it connected"
    );
}
