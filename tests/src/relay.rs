//! The home of a test TCP relay (the recording proxy, the WAN emulator): a
//! thread of its own running a current-thread tokio runtime that accepts
//! connections and hands each to the relay, told to stop and joined when the
//! handle is dropped.

use std::future::Future;

/// A relay's thread; dropping it stops the relay and waits for the thread.
pub(crate) struct RelayThread {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RelayThread {
    /// Accepts on `listener` (non-blocking) until dropped, on a new thread
    /// named `name`; each connection becomes a task running `relay(client)`.
    pub(crate) fn accept<F, Fut>(
        name: &str,
        listener: std::net::TcpListener,
        mut relay: F,
    ) -> std::io::Result<Self>
    where
        F: FnMut(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Self::spawn(name, move |mut stop| async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        tokio::task::spawn_local(relay(client));
                    }
                }
            }
        })
    }

    /// Runs `main(stop)` on a new thread named `name`; `stop` resolves when
    /// the handle is dropped, and `main` is expected to return then.
    fn spawn<F, Fut>(name: &str, main: F) -> std::io::Result<Self>
    where
        F: FnOnce(tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("relay runtime");
                tokio::task::LocalSet::new().block_on(&rt, main(rx));
            })?;
        Ok(Self {
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for RelayThread {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
