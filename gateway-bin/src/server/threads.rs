//! Binding the public listeners and serving them from one event loop per thread.
//!
//! Kept apart from the connection handling in [`super`]: this is the runtime's shape (which
//! threads run which accept loops), not what happens on a connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Binds a listener with `SO_REUSEADDR`, so a restarted gateway can bind at once.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::from_std(bind_std(addr)?)
}

/// Binds a listener, not yet tied to a runtime: [`ServingThreads`] threads each register a
/// clone of it (`try_clone`, the same socket) with their own.
///
/// Why one socket and not `SO_REUSEPORT`: with it, a second gateway started by mistake as the
/// same user (an old instance, another config) would bind the same port without an error and
/// silently take a share of the connections, under its own routes and roles. One socket keeps
/// that an `EADDRINUSE` at start; its cost is that every thread wakes for a new connection and
/// one wins the `accept` (per connection, not per request).
pub fn bind_std(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Threads that serve the public listeners beside the runtime that started the gateway, each
/// on a current-thread runtime of its own, accepting on the same listening sockets: nginx's shape,
/// one event loop per core.
///
/// Why not tokio's work-stealing runtime: per request, its cross-thread wake-ups and shared
/// queues cost more than a current-thread runtime's (`bench/README.md`, "The runtime's shape"),
/// and a request never needs another core: a connection stays on the thread that accepted it.
/// What is shared (routes, sessions, metrics) is `Sync` already; per-thread state (the
/// upstream pools, metric handles, the access log buffer) is per thread by design.
#[derive(Default)]
pub struct ServingThreads {
    release: Option<watch::Sender<bool>>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl ServingThreads {
    /// Runs `serve()` on a new thread, inside the thread's runtime (so that it can register
    /// listeners with it: [`TcpListener::from_std`]). `serve`'s future ends when the gateway
    /// starts draining; the runtime keeps running the connections' tasks until
    /// [`ServingThreads::stop`].
    pub fn spawn<F, Fut>(&mut self, name: String, serve: F) -> io::Result<()>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future,
    {
        let mut released = self
            .release
            .get_or_insert_with(|| watch::channel(false).0)
            .subscribe();
        // The same event loop as the starting thread's: one thread, the access log flushed
        // when it parks.
        let runtime = runtime(RuntimeShape::default())?;
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            runtime.block_on(async move {
                serve().await;
                // Also ends when the sender is dropped (a `Running` dropped without a drain).
                let _ = released.wait_for(|r| *r).await;
            });
            // Connections still open after the grace period are cut here.
            drop(runtime);
            crate::telemetry::access::flush_local();
        })?;
        self.handles.push(handle);
        Ok(())
    }

    /// How many threads serve besides the starting runtime.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// True when only the starting runtime serves.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Stops the threads (call it once the drain is over) and waits for them.
    pub async fn stop(self) {
        if let Some(release) = self.release {
            let _ = release.send(true);
        }
        let handles = self.handles;
        if handles.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for h in handles {
                let _ = h.join();
            }
        })
        .await;
    }
}

/// How many threads serve, and how: see [`runtime`].
#[derive(Clone, Copy, Debug)]
pub struct RuntimeShape {
    /// Threads that serve requests (at least 1).
    pub threads: usize,
    /// One tokio work-stealing runtime with `threads` workers, instead of one current-thread
    /// runtime per thread.
    pub work_stealing: bool,
}

impl Default for RuntimeShape {
    /// One thread, on a current-thread runtime: what every command but `gateway run` needs.
    fn default() -> Self {
        RuntimeShape {
            threads: 1,
            work_stealing: false,
        }
    }
}

impl RuntimeShape {
    /// The `serving_threads` for [`crate::app::StartOptions`]: the threads beyond the runtime
    /// [`runtime`] builds are serving threads, unless the runtime steals work itself.
    pub fn serving_threads(&self) -> usize {
        if self.work_stealing {
            1
        } else {
            self.threads.max(1)
        }
    }
}

/// The runtime the binary runs on. With `work_stealing`, tokio's multi-thread runtime;
/// otherwise a current-thread runtime, the first of the shape's event loops (the app starts the
/// others as [`ServingThreads`]). Either way the access log's lines of one event-loop turn go
/// out in one write when the thread runs out of work (`telemetry::access`).
pub fn runtime(shape: RuntimeShape) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = if shape.work_stealing {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(shape.threads.max(1));
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .on_thread_park(crate::telemetry::access::flush_local)
        .on_thread_stop(crate::telemetry::access::flush_local)
        .build()
}

/// What a serving thread runs for one listener: a closure that builds the listener's accept
/// loop inside the thread's runtime (registering a socket needs the runtime it will run on).
type ServeJob = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The public listeners of a gateway that serves on several threads: each listener is bound
/// once, and its one socket is served by the starting runtime and by every serving thread
/// (see [`bind_std`] for why one socket). Collect the listeners with
/// [`PublicListeners::serve`], then start the threads with [`PublicListeners::start`].
pub struct PublicListeners {
    /// One list per extra thread: the accept loops it will run.
    jobs: Vec<Vec<ServeJob>>,
}

impl PublicListeners {
    /// Listeners for `threads` threads: the runtime that calls [`PublicListeners::serve`] and
    /// `threads - 1` more (0 and 1 both mean the calling runtime alone).
    pub fn new(threads: usize) -> Self {
        PublicListeners {
            jobs: (1..threads.max(1)).map(|_| Vec::new()).collect(),
        }
    }

    /// Binds `addr` and serves it with `serve` (an accept loop, such as
    /// [`super::serve_plain`]): on the calling runtime as a task of `tasks`, and on every
    /// serving thread once [`PublicListeners::start`] has started them. Returns the bound
    /// address (the port, when `addr`'s is 0).
    pub fn serve<F, Fut>(
        &mut self,
        addr: SocketAddr,
        tasks: &mut JoinSet<()>,
        serve: F,
    ) -> io::Result<SocketAddr>
    where
        F: Fn(TcpListener) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let socket = bind_std(addr)?;
        // The clones are taken before the socket is registered with this runtime: each
        // thread registers its own with its runtime.
        let clones = (0..self.jobs.len())
            .map(|_| socket.try_clone())
            .collect::<io::Result<Vec<_>>>()?;
        let listener = TcpListener::from_std(socket)?;
        let bound = listener.local_addr()?;
        for (jobs, clone) in self.jobs.iter_mut().zip(clones) {
            let serve = serve.clone();
            jobs.push(Box::new(move || {
                Box::pin(async move {
                    match TcpListener::from_std(clone) {
                        Ok(listener) => serve(listener).await,
                        Err(e) => tracing::error!(
                            error = %e,
                            addr = %bound,
                            "a serving thread cannot use its listener"
                        ),
                    }
                })
            }));
        }
        tasks.spawn(serve(listener));
        Ok(bound)
    }

    /// [`PublicListeners::serve`] with [`super::serve_plain`]: plain HTTP on `addr`, each
    /// connection served by `make`'s service.
    pub fn serve_plain<M>(
        &mut self,
        addr: SocketAddr,
        tasks: &mut JoinSet<()>,
        make: M,
        settings: super::ConnSettings,
    ) -> io::Result<SocketAddr>
    where
        M: super::MakeService,
        <M::Service as tower::Service<http::Request<hyper::body::Incoming>>>::Future:
            Send + 'static,
    {
        self.serve(addr, tasks, move |listener| {
            super::serve_plain(listener, make.clone(), settings.clone())
        })
    }

    /// Starts the serving threads ("serve-1", "serve-2", …), each running the accept loops of
    /// every listener collected.
    pub fn start(self) -> io::Result<ServingThreads> {
        let mut threads = ServingThreads::default();
        for (k, jobs) in self.jobs.into_iter().enumerate() {
            threads.spawn(format!("serve-{}", k + 1), move || {
                futures_util::future::join_all(jobs.into_iter().map(|job| job()))
            })?;
        }
        Ok(threads)
    }
}
