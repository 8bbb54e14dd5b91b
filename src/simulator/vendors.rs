//! The one list of simulated vendors, and the accounts `--demo` polls. A new vendor is a
//! module beside this one and a line in each list here.

use std::net::SocketAddr;

use super::acedata::{self, AcedataSim};
use super::route::Route;
use super::vendor::Vendor;
use super::yeastar::{self, YeastarSim};
use super::{SimOptions, Simulator};

/// Every vendor's routes.
const ROUTES: &[&[Route]] = &[acedata::ROUTES, yeastar::ROUTES];

impl Route {
    /// Every route of every simulated vendor, in a fixed order.
    pub fn all() -> impl Iterator<Item = Route> {
        ROUTES.iter().flat_map(|r| r.iter().copied())
    }

    /// The route serving `path`, if any. Paths are matched exactly.
    pub fn from_path(path: &str) -> Option<Route> {
        Route::all().find(|r| r.path() == path)
    }
}

/// A fresh state of every vendor.
pub(crate) fn all() -> Vec<Box<dyn Vendor>> {
    vec![
        Box::new(AcedataSim::default()),
        Box::new(YeastarSim::default()),
    ]
}

/// The platform token of the Ace Data Cloud account that `--demo` polls.
pub const DEMO_ACEDATA_TOKEN: &str = "demo-acedata-platform-token";
/// The client id of the Yeastar account that `--demo` polls.
pub const DEMO_YEASTAR_CLIENT_ID: &str = "demo-yeastar-client-id";
/// The client secret of the Yeastar account that `--demo` polls.
pub const DEMO_YEASTAR_CLIENT_SECRET: &str = "demo-yeastar-client-secret";

impl Simulator {
    /// Starts the `--demo` simulator on `addr`: [`SimOptions::demo`], with the account
    /// [`DEMO_ACEDATA_TOKEN`] and the client [`DEMO_YEASTAR_CLIENT_ID`] /
    /// [`DEMO_YEASTAR_CLIENT_SECRET`] registered.
    pub async fn start_demo(addr: SocketAddr) -> std::io::Result<Simulator> {
        Simulator::start_demo_with(addr, SimOptions::demo()).await
    }

    /// [`Simulator::start_demo`] with other options.
    pub async fn start_demo_with(addr: SocketAddr, opts: SimOptions) -> std::io::Result<Simulator> {
        let sim = Simulator::start_on(addr, opts).await?;
        sim.add_acedata_account(DEMO_ACEDATA_TOKEN);
        sim.add_yeastar_client(DEMO_YEASTAR_CLIENT_ID, DEMO_YEASTAR_CLIENT_SECRET);
        Ok(sim)
    }
}
