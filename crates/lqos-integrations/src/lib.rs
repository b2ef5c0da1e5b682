//! lqos-integrations turns a CRM's view of the network (UISP, Splynx, Netzur) into lqos's two
//! input files. Each CRM module keeps the HTTP edge, `pull(&Config, &HttpOptions) -> Docs`
//! (reqwest with rustls, timeouts, retries with backoff on 429/5xx), apart from a pure
//! `import(&Docs, &Config) -> Import` that builds the [`Network`] and the [`Circuit`]s and
//! reports every oddity as a warning [`Diagnostic`]. [`publish`] validates the result with
//! lqos-config, refuses empty or shrinking imports (the sanity guard), keeps `.bak` copies and
//! writes `network.json` and `ShapedDevices.csv` atomically.
//!
//! It never talks to lqosd and never touches the kernel: the scheduler asks lqosd to reload
//! after a publish. It never prints (tracing only).
//!
//! Main items: [`Crm`], [`Import`], [`ImportError`], [`enabled_crm`], [`pull_and_import`],
//! [`publish`], [`PublishReport`].
#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "tests unwrap known-good inputs"))]

pub mod common;
pub mod error;
pub mod http;
pub mod mikrotik;
#[cfg(feature = "mock")]
pub mod mock;
pub mod netzur;
pub mod overrides;
mod publish;
pub mod splynx;
pub mod uisp;

use lqos_config::{Circuit, Config, Diagnostic, Network};

pub use error::{Crm, ImportError, error_chain};
pub use http::HttpOptions;
pub use publish::{PublishOptions, PublishReport, publish};

/// What an import produced: the hierarchy, the circuits and every warning.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// Which CRM it came from.
    pub crm: Crm,
    /// The network.json tree (empty for `flat`).
    pub network: Network,
    /// The circuits, in the CRM's order.
    pub circuits: Vec<Circuit>,
    /// Things left out or adjusted (suspended clients, filtered addresses, renamed nodes…).
    pub warnings: Vec<Diagnostic>,
}

/// The raw documents of one pull, per CRM.
#[derive(Debug, Clone, PartialEq)]
pub enum Docs {
    /// UISP's three lists.
    Uisp(uisp::UispDocs),
    /// Splynx's lists.
    Splynx(Box<splynx::SplynxDocs>),
    /// Netzur's one document.
    Netzur(netzur::NetzurDocs),
}

/// The integration to run: the first enabled one in LibreQoS's priority order (UISP, Splynx,
/// Netzur), plus a warning naming the others when several are enabled.
pub fn enabled_crm(config: &Config) -> (Option<Crm>, Option<String>) {
    let enabled: Vec<Crm> = [
        (Crm::Uisp, config.uisp.as_ref().is_some_and(|c| c.enabled)),
        (Crm::Splynx, config.splynx.as_ref().is_some_and(|c| c.enabled)),
        (Crm::Netzur, config.netzur.as_ref().is_some_and(|c| c.enabled)),
    ]
    .into_iter()
    .filter_map(|(c, on)| on.then_some(c))
    .collect();
    let warning = (enabled.len() > 1).then(|| {
        let others: Vec<String> = enabled.iter().skip(1).map(ToString::to_string).collect();
        format!(
            "several integrations are enabled; running {} only (priority UISP > Splynx > Netzur), ignoring {}",
            enabled[0],
            others.join(", ")
        )
    });
    (enabled.first().copied(), warning)
}

/// Fetches one CRM's documents.
pub async fn pull(crm: Crm, config: &Config, opts: &HttpOptions) -> Result<Docs, ImportError> {
    Ok(match crm {
        Crm::Uisp => Docs::Uisp(uisp::pull(config, opts).await?),
        Crm::Splynx => Docs::Splynx(Box::new(splynx::pull(config, opts).await?)),
        Crm::Netzur => Docs::Netzur(netzur::pull(config, opts).await?),
    })
}

/// Runs the pure import for already fetched documents.
pub fn import(docs: &Docs, config: &Config) -> Result<Import, ImportError> {
    match docs {
        Docs::Uisp(d) => uisp::import(d, config),
        Docs::Splynx(d) => splynx::import(d, config),
        Docs::Netzur(d) => netzur::import(d, config),
    }
}

/// [`pull`] (with the MikroTik IPv6 lookup alongside when enabled), [`import`], the IPv6
/// merge ([`mikrotik::merge`]), then the operator's override files from `lqos_directory`
/// ([`overrides::load_and_apply`]): what the scheduler runs every cycle.
pub async fn pull_and_import(
    crm: Crm,
    config: &Config,
    opts: &HttpOptions,
) -> Result<Import, ImportError> {
    let (docs, ipv6) = if config.wants_mikrotik_ipv6() {
        let (docs, ipv6) = tokio::join!(pull(crm, config, opts), mikrotik::pull_map(config, opts));
        (docs?, Some(ipv6))
    } else {
        (pull(crm, config, opts).await?, None)
    };
    let mut imported = import(&docs, config)?;
    if let Some((map, warnings)) = ipv6 {
        let added = mikrotik::merge(&mut imported, &map);
        tracing::debug!(crm = crm.key(), added, "IPv6 from MikroTik routers merged");
        imported.warnings.extend(warnings);
    }
    overrides::load_and_apply(config, &mut imported)?;
    Ok(imported)
}
