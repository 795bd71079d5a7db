//! The client commands against a real `permd serve`: `--token` for the API
//! token, `permd admin write|revision`, and `check --exit-code`'s three
//! statuses (TLS flags: tests/tls.rs; lookup and access outputs: the
//! README examples, scripts/readme_examples.py).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Output;
use std::time::Duration;

use common::server::{Serve, bounded_by, output_within, scratch_dir};
use tokio::process::Command;

const API_TOKEN: &str = "cli-api-token-0123456789";
const ADMIN_TOKEN: &str = "cli-admin-token-0123456789";

/// `permd ARGS`; a leading `--token T` goes after the subcommand.
async fn permd(addr: &str, args: &[&str]) -> Output {
    let args: Vec<&str> = match args {
        ["--token", token, command, rest @ ..] => {
            [&[*command, "--token", *token][..], rest].concat()
        }
        _ => args.to_vec(),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_permd"));
    cmd.args(&args)
        .env("PERMD_ADDR", addr)
        .env_remove("PERMD_TOKEN");
    output_within(cmd, "permd", Duration::from_secs(30))
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_carry_tokens_write_through_admin_and_exit_by_the_answer() {
    bounded_by(Duration::from_secs(120), async {
        let server = Serve::new()
            .args(["--api-token", API_TOKEN, "--admin-token", ADMIN_TOKEN])
            .spawn();
        server.channel().await;
        let addr = server.url();
        let token = ["--token", API_TOKEN];

        // Without the token: refused, and --exit-code says "could not ask".
        let out = permd(
            &addr,
            &[
                "check",
                "--principal",
                "carol",
                "--demo-contacts",
                "3",
                "--exit-code",
            ],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("Unauthenticated"), "{}", text(&out));

        // All allowed: 0; some denied: 1; both print the answer.
        let all = permd(
            &addr,
            &[
                &token[..],
                &[
                    "check",
                    "--principal",
                    "carol",
                    "--exit-code",
                    "c0000000-0000-4000-8000-000000000001",
                ],
            ]
            .concat(),
        )
        .await;
        assert_eq!(all.status.code(), Some(0), "{}", text(&all));
        let some = permd(
            &addr,
            &[
                &token[..],
                &[
                    "check",
                    "--principal",
                    "dave",
                    "--exit-code",
                    "--demo-contacts",
                    "20",
                ],
            ]
            .concat(),
        )
        .await;
        assert_eq!(some.status.code(), Some(1), "{}", text(&some));
        assert!(text(&some).contains("NO_RECORD_ACCESS"), "{}", text(&some));
        // Without --exit-code a denial is still a success.
        let plain = permd(
            &addr,
            &[
                &token[..],
                &["check", "--principal", "dave", "--demo-contacts", "20"],
            ]
            .concat(),
        )
        .await;
        assert_eq!(plain.status.code(), Some(0), "{}", text(&plain));

        // lookup and access carry the token too.
        let lookup = permd(
            &addr,
            &[&["lookup", "--principal", "carol", "--count"], &token[..]].concat(),
        )
        .await;
        assert!(lookup.status.success(), "{}", text(&lookup));
        assert!(
            text(&lookup).contains("carol view contacts: 9600 records"),
            "{}",
            text(&lookup)
        );
        assert!(text(&lookup).contains("million ids/s"), "{}", text(&lookup));
        // Packed, the same ids in the same order, printed the same way.
        let first = |packed: &[&'static str]| {
            let args = [
                &["lookup", "--principal", "carol", "--limit", "1200"][..],
                packed,
                &token[..],
            ]
            .concat();
            let addr = addr.clone();
            async move {
                let out = permd(&addr, &args).await;
                assert!(out.status.success(), "{}", text(&out));
                String::from_utf8(out.stdout).unwrap()
            }
        };
        let (strings, packed) = (first(&[]).await, first(&["--packed"]).await);
        assert_eq!(strings.lines().count(), 1200, "{strings}");
        assert_eq!(packed, strings);
        let access = permd(
            &addr,
            &[
                &token[..],
                &["access", "--principal", "carol", "--object", "contacts"],
            ]
            .concat(),
        )
        .await;
        assert!(access.status.success(), "{}", text(&access));
        assert!(
            text(&access).starts_with("demo: carol may"),
            "{}",
            text(&access)
        );

        // Admin: needs its own token; writes are read back at once.
        let refused = permd(&addr, &["admin", "revision"]).await;
        assert!(!refused.status.success());
        assert!(text(&refused).contains("--token"), "{}", text(&refused));
        let before = permd(&addr, &["admin", "revision", "--token", ADMIN_TOKEN]).await;
        assert_eq!(
            String::from_utf8_lossy(&before.stdout).trim(),
            "revision 1",
            "{}",
            text(&before)
        );
        let dir = scratch_dir("cli-admin");
        let file = dir.join("mutations.yaml");
        std::fs::write(
            &file,
            "- tenant: demo\n  entity: user\n  upsert: {id: newcomer, roles: [sales_rep]}\n",
        )
        .unwrap();
        let wrote = permd(
            &addr,
            &[
                "admin",
                "write",
                "--token",
                ADMIN_TOKEN,
                file.to_str().unwrap(),
            ],
        )
        .await;
        assert!(wrote.status.success(), "{}", text(&wrote));
        assert_eq!(
            String::from_utf8_lossy(&wrote.stdout).trim(),
            "wrote 1 mutations: revision 2"
        );
        let seen = permd(
            &addr,
            &[
                &token[..],
                &[
                    "check",
                    "--principal",
                    "newcomer",
                    "--exit-code",
                    "c0000000-0000-4000-8000-000000000001",
                ],
            ]
            .concat(),
        )
        .await;
        assert_ne!(
            seen.status.code(),
            Some(2),
            "the new user is known: {}",
            text(&seen)
        );
        std::fs::write(&file, "- {tenant: demo, entity: user}\n").unwrap();
        let bad = permd(
            &addr,
            &[
                "admin",
                "write",
                "--token",
                ADMIN_TOKEN,
                file.to_str().unwrap(),
            ],
        )
        .await;
        assert!(!bad.status.success());
        assert!(
            text(&bad).contains("exactly one of `upsert` and `delete`"),
            "{}",
            text(&bad)
        );
    })
    .await;
}
