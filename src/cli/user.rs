//! `switchboard user create|list`.

use crate::Config;

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create an account (works even when open registration is off).
    Create {
        name: String,
        /// The password; without it one is generated and printed.
        #[arg(long)]
        password: Option<String>,
        /// The name shown to others [default: the username]
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List all accounts.
    List,
}

pub async fn run(config: Config, command: UserCommand) -> anyhow::Result<()> {
    let (store, accounts) = super::open(&config).await?;
    match command {
        UserCommand::Create {
            name,
            password,
            display_name,
        } => {
            let generated = password.is_none();
            let password = password.unwrap_or_else(super::generated_password);
            let user = accounts
                .create_user(&name, &password, display_name.as_deref())
                .await?;
            println!(
                "Created user {} ({}) with id {}",
                user.username, user.display_name, user.id
            );
            if generated {
                println!("Password: {password}");
            }
        }
        UserCommand::List => {
            let users = store.list_users().await?;
            println!("{:>5}  {:<32}  DISPLAY NAME", "ID", "USERNAME");
            for user in &users {
                println!(
                    "{:>5}  {:<32}  {}",
                    user.id, user.username, user.display_name
                );
            }
            println!("{} user(s)", users.len());
        }
    }
    Ok(())
}
