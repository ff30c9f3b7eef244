//! Recent events for the status page: the last warnings and errors the
//! gateway logged, kept by a `tracing` layer beside the log output.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// How many events the page shows at most.
const KEPT: usize = 50;

static RECENT: Mutex<VecDeque<Event>> = Mutex::new(VecDeque::new());

/// One logged warning or error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: SystemTime,
    pub level: Level,
    /// The message, then its fields as `key=value`.
    pub text: String,
}

/// The kept events, newest first.
pub fn recent() -> Vec<Event> {
    let kept = RECENT.lock().unwrap_or_else(|p| p.into_inner());
    kept.iter().rev().cloned().collect()
}

/// The layer that keeps WARN and ERROR events (add it to the subscriber).
pub struct Recent;

impl<S: Subscriber> Layer<S> for Recent {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let mut kept = RECENT.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(Event {
            at: SystemTime::now(),
            level,
            text: format!("{}{}", text.message, text.fields),
        });
    }
}

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}
