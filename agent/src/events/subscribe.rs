//! The subscriber task: stays subscribed to the store's KV events, puts the changed paths in
//! the [`Inbox`], and asks for a full check after every (re)subscription. When the store has
//! no events for the agent (an older store, a token without `read` on
//! `sys/events/subscribe`, a proxy that drops WebSockets) it says so once, counts every refused
//! attempt, and keeps trying with the agent's backoff while the metadata poll does the work.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::connect::{self, ConnectError, Socket, Target};
use super::{parse, Inbox, EVENT_TYPES};
use crate::auth::TokenSource;
use crate::retry::backoff::Backoff;
use crate::telemetry::{Metrics, PushState};

/// How often the agent pings a quiet subscription (and looks for a new token).
const PING_EVERY: Duration = Duration::from_secs(15);
/// A subscription with no frame at all (not even a pong) for this long is dead: resubscribe.
const IDLE_LIMIT: Duration = Duration::from_secs(45);

/// Where and how to subscribe.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server address (`https://host:port`).
    pub addr: String,
    pub ca_cert: Option<PathBuf>,
    /// First retry delay, doubled up to `backoff_max`.
    pub retry_base: Duration,
    pub backoff_max: Duration,
}

/// How a subscription ended.
#[derive(Debug)]
enum End {
    Cancelled,
    /// The agent's token changed: subscribe with the new one.
    NewToken,
    Lost(String),
}

/// Stay subscribed until `cancel`.
pub async fn run(
    settings: Settings,
    tokens: Arc<TokenSource>,
    inbox: Arc<Inbox>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let setup = Target::parse(&settings.addr).and_then(|t| {
        let tls = if t.tls {
            Some(connect::tls_config(settings.ca_cert.as_deref())?)
        } else {
            None
        };
        Ok((t, tls))
    });
    let (target, tls) = match setup {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot subscribe to events; only the metadata poll finds changes");
            metrics.push_state(PushState::Unavailable);
            return;
        }
    };
    let mut backoff = Backoff::new(settings.retry_base, settings.backoff_max);
    // Said once (and again after events came back and went away).
    let mut unavailable_said = false;
    loop {
        metrics.push_state(PushState::Connecting);
        let (token, generation) = (tokens.token(), tokens.generation());
        let opened = tokio::select! {
            _ = cancel.cancelled() => break,
            r = connect::open(&target, tls.as_ref(), &token, EVENT_TYPES) => r,
        };
        drop(token);
        match opened {
            Ok(socket) => {
                metrics.push_subscribed();
                metrics.push_state(PushState::Subscribed);
                tracing::info!(types = EVENT_TYPES, "subscribed to the store's events");
                unavailable_said = false;
                // Anything may have changed while the agent was not subscribed.
                inbox.resync();
                let end = session(socket, &inbox, &metrics, &tokens, generation, &cancel).await;
                match end {
                    End::Cancelled => break,
                    End::NewToken => {
                        tracing::info!("new agent token: subscribing again with it");
                        backoff.reset();
                        continue;
                    }
                    End::Lost(why) => {
                        tracing::warn!(reason = %why, "events subscription lost; polling until subscribed again");
                        backoff.reset();
                    }
                }
            }
            Err(e @ ConnectError::Unavailable { .. }) => {
                metrics.push_unavailable();
                metrics.push_state(PushState::Unavailable);
                if !unavailable_said {
                    tracing::warn!(error = %e, "no events from the store; only the metadata poll finds changes (retrying with backoff)");
                    unavailable_said = true;
                } else {
                    tracing::debug!(error = %e, "still no events from the store");
                }
            }
            Err(e @ ConnectError::Setup(_)) => {
                metrics.push_state(PushState::Unavailable);
                tracing::warn!(error = %e, "cannot subscribe to events; only the metadata poll finds changes");
                break;
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not subscribe to events; retrying");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
    metrics.push_state(PushState::Off);
}

/// Read events until the subscription ends.
async fn session(
    mut socket: Socket,
    inbox: &Inbox,
    metrics: &Metrics,
    tokens: &TokenSource,
    generation: u64,
    cancel: &CancellationToken,
) -> End {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    let mut last_frame = tokio::time::Instant::now();
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_millis(200), socket.close(None)).await;
                return End::Cancelled;
            }
            _ = ping.tick() => {
                if tokens.generation() != generation {
                    let _ = tokio::time::timeout(Duration::from_millis(200), socket.close(None)).await;
                    return End::NewToken;
                }
                if last_frame.elapsed() > IDLE_LIMIT {
                    return End::Lost(format!("nothing heard for {IDLE_LIMIT:?}"));
                }
                if let Err(e) = socket.send(Message::Ping(Vec::new().into())).await {
                    return End::Lost(e.to_string());
                }
                continue;
            }
            f = socket.next() => f,
        };
        last_frame = tokio::time::Instant::now();
        match frame {
            None => return End::Lost("the store closed the connection".into()),
            Some(Err(e)) => return End::Lost(e.to_string()),
            Some(Ok(Message::Close(close))) => {
                let why = close.map_or_else(
                    || "closed by the store".to_string(),
                    |c| format!("closed by the store: {} {}", u16::from(c.code), c.reason),
                );
                return End::Lost(why);
            }
            Some(Ok(Message::Text(text))) => {
                metrics.push_event();
                match parse(&text) {
                    Ok(event) => {
                        tracing::debug!(event_type = %event.event_type, path = %event.path, "event");
                        inbox.changed(&event.path);
                        if let Some(p) = event.data_path.filter(|p| *p != event.path) {
                            inbox.changed(&p);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "ignoring an event"),
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
#[path = "subscribe_tests.rs"]
mod tests;
