//! Outgoing mail (password reset links): SMTP through lettre when `mail.smtp_url` is set,
//! otherwise a file outbox (`mail.outbox_dir`) that writes each message as an `.eml` file.
//!
//! Addresses go through lettre's mailbox parser and headers through its encoder, so a
//! `\r\n` in a name or address cannot inject headers.

use anyhow::Context;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::MailSettings;

/// How mail leaves the server.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
}

/// A plain-text message to one recipient.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Mailer {
    pub fn from_settings(settings: &MailSettings) -> anyhow::Result<Self> {
        match settings.smtp_url.expose() {
            "" => {
                let dir = std::path::PathBuf::from(&settings.outbox_dir);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("mail.outbox_dir: creating {}", dir.display()))?;
                Ok(Mailer::Outbox(AsyncFileTransport::new(&dir), dir))
            }
            url => Ok(Mailer::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("mail.smtp_url")?
                    .build(),
            )),
        }
    }

    /// Sends one message from `from`.
    pub async fn send(&self, from: &str, mail: Mail) -> anyhow::Result<()> {
        let from: Mailbox = from.parse().context("mail.from is not a valid mailbox")?;
        let to: Mailbox = mail
            .to
            .parse()
            .context("recipient is not a valid mailbox")?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)
            .context("building the message")?;
        match self {
            Mailer::Smtp(t) => {
                t.send(message).await.context("sending over SMTP")?;
            }
            Mailer::Outbox(t, dir) => {
                let id = t.send(message).await.context("writing to the outbox")?;
                tracing::info!(outbox = %dir.display(), file = %format!("{id}.eml"), "mail written to the outbox");
            }
        }
        Ok(())
    }
}
