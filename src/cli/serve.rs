//! `switchboard serve [--listen ADDR] [--demo]`.

use std::net::SocketAddr;

use anyhow::Context;

use crate::chats::{start_chat, Started};
use crate::clock::{Clock, SystemClock};
use crate::{App, Config};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [env: SWITCHBOARD_LISTEN] [default: 127.0.0.1:8000]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Create (or reset) the demo users alice and bob with fresh passwords, printed, and a
    /// chat between them.
    #[arg(long)]
    pub demo: bool,
    /// Serve plain HTTP whatever the configuration says about TLS (no certificate, no
    /// redirect listener). Without it, `--demo` on an address other than loopback serves HTTPS
    /// with a self-signed certificate, since browsers allow the camera only over HTTPS.
    #[arg(long)]
    pub no_tls: bool,
}

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let demo_tls = apply_tls_flags(&mut config, &args);
    let app = App::build(config)
        .await
        .context("cannot start the server")?;
    if args.demo {
        seed_demo(&app)
            .await
            .context("cannot create the demo data")?;
    }
    if let Some(tls) = app.tls() {
        print_certificate(&tls);
    }
    println!("Switchboard is running on {}", app.url());
    let others = crate::tls::reachable_urls(app.scheme(), app.local_addr());
    if app.local_addr().ip().is_unspecified() && !others.is_empty() {
        println!("  reachable from other machines at {}", others.join(", "));
    }
    if let Some(redirect) = app.redirect_addr() {
        println!("  plain HTTP on {redirect} redirects to HTTPS");
    }
    if demo_tls {
        println!(
            "Open {} from another machine and accept the certificate warning \
             (compare the fingerprint above). --no-tls serves plain HTTP instead.",
            others.first().cloned().unwrap_or_else(|| app.url())
        );
    }
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        crate::app::termination_signal().await;
        tracing::info!("shutdown requested");
        shutdown.cancel();
    });
    app.run_until_stopped().await?;
    Ok(())
}

/// Applies `--no-tls`, and turns on a self-signed certificate for `--demo` on a non-loopback
/// address when no TLS is configured. Returns whether it did the latter.
fn apply_tls_flags(config: &mut Config, args: &ServeArgs) -> bool {
    if args.no_tls {
        config.tls_cert = None;
        config.tls_key = None;
        config.tls_self_signed = false;
        config.http_redirect_listen = None;
        return false;
    }
    if args.demo && !config.tls_enabled() && !config.listen.ip().is_loopback() {
        config.tls_self_signed = true;
        return true;
    }
    false
}

fn print_certificate(tls: &crate::tls::Tls) {
    match tls.self_signed() {
        Some(kept) => {
            println!(
                "TLS: self-signed certificate for {} ({}; for LANs and testing, \
                 browsers warn until it is accepted)",
                kept.names.join(", "),
                if kept.generated {
                    format!("new, kept in {}", kept.files.cert.display())
                } else {
                    format!("reused from {}", kept.files.cert.display())
                }
            );
        }
        None => println!("TLS: certificate {}", tls.files().cert.display()),
    }
    println!("  SHA-256 fingerprint: {}", tls.fingerprint());
}

/// Demo accounts get new passwords on every `--demo` start: they are printed, never stored in
/// the clear, so there is no default password to leak from a demo that went public.
async fn seed_demo(app: &App) -> anyhow::Result<()> {
    let store = app.store();
    let accounts = app.accounts();
    let mut users = Vec::new();
    println!("Demo accounts (new passwords on every --demo start):");
    for (name, display) in [("alice", "Alice"), ("bob", "Bob")] {
        let password = super::generated_password();
        let user = match super::find_user(store.as_ref(), name).await {
            Ok(user) => {
                accounts.set_password(&user, &password).await?;
                user
            }
            Err(_) => accounts.create_user(name, &password, Some(display)).await?,
        };
        println!("  {name:<6} password: {password}");
        users.push(user);
    }
    let chat = match start_chat(
        store.as_ref(),
        &users[0],
        &[users[1].username.clone()],
        None,
        SystemClock.now(),
    )
    .await?
    {
        Started::Created(chat) | Started::Existing(chat) => chat,
    };
    println!("  chat {} between alice and bob", chat.id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(demo: bool, no_tls: bool) -> ServeArgs {
        ServeArgs {
            listen: None,
            demo,
            no_tls,
        }
    }

    #[test]
    fn demo_on_a_lan_address_gets_a_self_signed_certificate() {
        let lan = Config {
            listen: "0.0.0.0:8000".parse().unwrap(),
            ..Config::default()
        };
        let mut config = lan.clone();
        assert!(apply_tls_flags(&mut config, &args(true, false)));
        assert!(config.tls_self_signed);

        let mut config = lan.clone();
        assert!(!apply_tls_flags(&mut config, &args(true, true)), "--no-tls");
        assert!(!config.tls_enabled());

        let mut config = lan.clone();
        apply_tls_flags(&mut config, &args(false, false));
        assert!(
            !config.tls_enabled(),
            "only --demo decides for the operator"
        );

        let mut config = Config::default();
        apply_tls_flags(&mut config, &args(true, false));
        assert!(!config.tls_enabled(), "loopback stays plain HTTP");

        let mut config = Config {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..lan
        };
        assert!(!apply_tls_flags(&mut config, &args(true, false)));
        assert!(!config.tls_self_signed, "a configured certificate wins");
    }
}
