//! menagerie's etcd backend (under construction).

use menagerie_core::url::ConnectUrl;
use menagerie_core::{Client, Error, Result};

/// Opens a session on the server(s) named by `url`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let url = menagerie_core::url::ConnectUrl::parse("etcd://127.0.0.1:1").unwrap();
/// assert!(menagerie_etcd::connect(&url).await.is_err());
/// # });
/// ```
pub async fn connect(url: &ConnectUrl) -> Result<Client> {
    let _ = url;
    Err(Error::unsupported("the etcd backend is not implemented yet"))
}
