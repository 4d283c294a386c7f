//! `maskrelay queue list|show|retry|cancel`: the delivery queue for operators,
//! against the configured database. Ids, statuses, attempts and reply codes only:
//! recipients and content stay encrypted and unshown.

use maskrelay_schema::queue_admin::DeliveryInfo;
use maskrelay_schema::{DeliveryId, DeliveryStatus, Store};

use crate::cli::QueueCommand;

/// Runs one `queue` subcommand against `store`, printing to standard output.
///
/// # Errors
/// An unknown status or delivery, one that is no longer pending, or a store failure.
pub async fn run(store: &Store, command: QueueCommand) -> anyhow::Result<()> {
    match command {
        QueueCommand::List { status, limit } => {
            let status = match status.as_deref() {
                None => None,
                Some(name) => Some(DeliveryStatus::parse(name).ok_or_else(|| {
                    let all: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
                    anyhow::anyhow!("--status {name:?} is not one of {}", all.join(", "))
                })?),
            };
            println!("delivery\tstatus\tattempts\tnext attempt (unix ms)\tlast error");
            for d in store
                .list_deliveries(status, limit.clamp(1, 10_000))
                .await?
            {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    d.id,
                    d.status.as_str(),
                    d.attempts,
                    d.due_at.map_or("-".into(), |t| t.to_string()),
                    d.last_error.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        QueueCommand::Show { id } => {
            let id = DeliveryId::from(id);
            let d = found(store.delivery_info(&id).await?, &id)?;
            print!("{}", describe(&d));
            Ok(())
        }
        QueueCommand::Retry { id } => {
            let id = DeliveryId::from(id);
            if !store.retry_now(&id).await? {
                return Err(not_pending(store, &id, "retry").await);
            }
            println!(
                "delivery {id} is due now; a running worker attempts it within its poll interval"
            );
            Ok(())
        }
        QueueCommand::Cancel { id } => {
            let id = DeliveryId::from(id);
            if !store.cancel_delivery(&id).await? {
                return Err(not_pending(store, &id, "cancel").await);
            }
            println!("delivery {id} cancelled; its content is wiped");
            Ok(())
        }
    }
}

/// Why a delivery could not be retried or cancelled: it does not exist, or it is
/// no longer pending (saying what it is).
async fn not_pending(store: &Store, id: &DeliveryId, action: &str) -> anyhow::Error {
    match store.delivery_info(id).await {
        Ok(info) => match found(info, id) {
            Ok(d) => anyhow::anyhow!(
                "delivery {id} is {}, not queued or deferred: nothing to {action}",
                d.status.as_str()
            ),
            Err(e) => e,
        },
        Err(e) => e.into(),
    }
}

fn found(info: Option<DeliveryInfo>, id: &DeliveryId) -> anyhow::Result<DeliveryInfo> {
    info.ok_or_else(|| {
        anyhow::anyhow!("no delivery {:?} (see `maskrelay queue list`)", id.as_str())
    })
}

fn describe(d: &DeliveryInfo) -> String {
    format!(
        "delivery:        {}\nmessage:         {}\nconversation:    {}\nstatus:          {}\n\
         attempts:        {}\nnext attempt:    {}\nlast error:      {}\nqueued at:       {}\n\
         last change:     {}\n",
        d.id,
        d.message_id,
        d.conversation_id
            .as_ref()
            .map_or_else(|| "- (a broadcast's copy)".to_owned(), ToString::to_string),
        d.status.as_str(),
        d.attempts,
        d.due_at.map_or("-".into(), |t| t.to_string()),
        d.last_error.as_deref().unwrap_or("-"),
        d.created_at,
        d.updated_at,
    )
}
