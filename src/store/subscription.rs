//! The invalidation channel's subscription: instances hear which sessions the others
//! ended or changed, and notice when they can no longer hear it.

use std::time::Duration;

use redis::AsyncCommands;

use super::redis::RedisStore;

/// How often a subscriber checks that it still hears its own heartbeat (see
/// [`RedisStore::watch`]).
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How heartbeats begin (a session key never does).
const HEARTBEAT_MARK: &str = "\u{1}heartbeat:";

impl RedisStore {
    /// Subscribes to `channel` for as long as the process runs: `on` gets each message,
    /// and `None` whenever the subscription is lost (messages may have been missed) or
    /// `Some(empty)` once it is (re)established. Reconnects every second (to the next
    /// seed of a cluster; to the primary Sentinel names then).
    pub fn watch(&self, channel: String, on: super::OnMessage) {
        let link = self.link.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            for attempt in 0.. {
                let subscribed = tokio::time::timeout(timeout, async {
                    let client = link.subscriber(attempt).await?;
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                })
                .await;
                match subscribed {
                    Ok(Ok(pubsub)) => {
                        on(Some(&[]));
                        let mut messages = pubsub.into_on_message();
                        // A subscription can die silently (a half-open connection, a
                        // cluster node cut off from the others): each instance publishes a
                        // heartbeat of its own every HEARTBEAT, and one that has not heard
                        // its own for two of them gives up and reconnects (cache off).
                        let own = format!("{HEARTBEAT_MARK}{}", uuid::Uuid::new_v4().simple());
                        let mut beat = tokio::time::interval(HEARTBEAT);
                        let mut heard = tokio::time::Instant::now();
                        loop {
                            tokio::select! {
                                msg = futures_util::StreamExt::next(&mut messages) => {
                                    let Some(msg) = msg else { break };
                                    let payload = msg.get_payload_bytes();
                                    if payload == own.as_bytes() {
                                        heard = tokio::time::Instant::now();
                                    } else if !payload.starts_with(HEARTBEAT_MARK.as_bytes())
                                        && !payload.is_empty()
                                    {
                                        on(Some(payload));
                                    }
                                }
                                _ = beat.tick() => {
                                    if heard.elapsed() > 2 * HEARTBEAT + timeout {
                                        break;
                                    }
                                    let publish = async {
                                        let mut conn = link.publisher(timeout).await?;
                                        conn.publish::<_, _, i64>(&channel, own.as_bytes()).await
                                    };
                                    let _ = super::connect::bounded(timeout, publish).await;
                                }
                            }
                        }
                        tracing::warn!(
                            "redis subscription lost; session cache off until it is back"
                        );
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "redis subscription failed"),
                    Err(_) => tracing::debug!("redis subscription timed out"),
                }
                on(None);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}
