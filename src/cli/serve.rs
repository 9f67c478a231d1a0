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
}

pub async fn run(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let app = App::build(config)
        .await
        .context("cannot start the server")?;
    if args.demo {
        seed_demo(&app)
            .await
            .context("cannot create the demo data")?;
    }
    println!("Switchboard is running on http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        crate::app::termination_signal().await;
        tracing::info!("shutdown requested");
        shutdown.cancel();
    });
    app.run_until_stopped().await?;
    Ok(())
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
