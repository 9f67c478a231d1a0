//! `switchboard chat create USER USER…`.

use crate::chats::{start_chat, Started};
use crate::clock::{Clock, SystemClock};
use crate::Config;

#[derive(Debug, clap::Subcommand)]
pub enum ChatCommand {
    /// Start a chat; the first user is its creator.
    Create {
        /// Usernames of the participants (at least two).
        #[arg(required = true, num_args = 2..)]
        users: Vec<String>,
        #[arg(long)]
        title: Option<String>,
    },
}

pub async fn run(config: Config, command: ChatCommand) -> anyhow::Result<()> {
    let (store, _) = super::open(&config).await?;
    match command {
        ChatCommand::Create { users, title } => {
            let creator = super::find_user(store.as_ref(), &users[0]).await?;
            let started = start_chat(
                store.as_ref(),
                &creator,
                &users[1..],
                title.as_deref(),
                SystemClock.now(),
            )
            .await?;
            let (chat, verb) = match started {
                Started::Created(chat) => (chat, "Created"),
                Started::Existing(chat) => (chat, "Found existing"),
            };
            let names: Vec<_> = chat
                .participants
                .iter()
                .map(|p| p.username.as_str())
                .collect();
            println!("{verb} chat {} between {}", chat.id, names.join(", "));
        }
    }
    Ok(())
}
