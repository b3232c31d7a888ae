//! Which codec and request dialect each protocol uses.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::codec::ejabberd::EjabberdCodec;
use crate::codec::generic::LineCodec;
use crate::codec::postfix::PostfixCodec;
use crate::codec::saslauthd::SaslauthdCodec;
use crate::handler::Handler;
use crate::serve::{serve, End, Watch};
use crate::stdio_serve::serve_stdio;
use crate::vocab::Protocol;

/// Serves one stream in `protocol` until EOF, `quit`, shutdown or what
/// `watch` watches for (see [`serve`]).
pub async fn serve_protocol<R, W>(
    protocol: Protocol,
    reader: R,
    writer: W,
    handler: Arc<Handler>,
    shutdown: watch::Receiver<bool>,
    watch: Option<Watch>,
) -> io::Result<End>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    match protocol {
        Protocol::Ejabberd => {
            serve::<_, _, EjabberdCodec>(reader, writer, handler, protocol, shutdown, watch).await
        }
        Protocol::Generic => {
            serve::<_, _, LineCodec>(reader, writer, handler, protocol, shutdown, watch).await
        }
        Protocol::Postfix => {
            serve::<_, _, PostfixCodec>(reader, writer, handler, protocol, shutdown, watch).await
        }
        Protocol::Saslauthd => {
            serve::<_, _, SaslauthdCodec>(reader, writer, handler, protocol, shutdown, watch).await
        }
        Protocol::Metrics => crate::monitor::serve_scrape(reader, writer, handler.monitor()).await,
    }
}

/// Serves `protocol` on the process's stdin/stdout with blocking reads on
/// this thread (see [`crate::stdio_serve`]); cloud questions run on `runtime`.
pub fn serve_stdio_protocol(
    protocol: Protocol,
    handler: Arc<Handler>,
    runtime: &tokio::runtime::Handle,
) -> io::Result<End> {
    match protocol {
        Protocol::Ejabberd => serve_stdio::<EjabberdCodec>(handler, protocol, runtime),
        Protocol::Generic => serve_stdio::<LineCodec>(handler, protocol, runtime),
        Protocol::Postfix => serve_stdio::<PostfixCodec>(handler, protocol, runtime),
        Protocol::Saslauthd => serve_stdio::<SaslauthdCodec>(handler, protocol, runtime),
        Protocol::Metrics => Err(io::Error::other("metrics is served on a socket only")),
    }
}
