//! Publishing an import: validate, guard against empty or shrinking imports, keep `.bak`
//! copies, write atomically. Files that fail validation are never written.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use lqos_config::{
    Config, Diagnostic, has_errors, network_to_string, parse_shaped_devices_str,
    shaped_devices_to_string, validate_inputs, write_atomic,
};
use tracing::{debug, info};

use crate::Import;
use crate::error::ImportError;

/// How to publish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Skip the empty/shrink guard (`lqos_scheduler --once --force`).
    pub force: bool,
    /// Validate and guard as usual but write nothing (`lqos_scheduler --once --no-write`); the
    /// report then says what would have changed.
    pub dry_run: bool,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublishReport {
    /// Circuits in the previous ShapedDevices.csv (`None` when there was none).
    pub circuits_before: Option<usize>,
    /// Circuits published.
    pub circuits: usize,
    /// Devices published.
    pub devices: usize,
    /// Nodes in network.json.
    pub nodes: usize,
    /// Previous circuits no longer present.
    pub removed: usize,
    /// True when network.json changed (and was written, unless a dry run).
    pub network_changed: bool,
    /// True when ShapedDevices.csv changed (and was written, unless a dry run).
    pub devices_changed: bool,
    /// True when nothing was written ([`PublishOptions::dry_run`]).
    pub dry_run: bool,
    /// Validation warnings (errors block the publish).
    pub warnings: Vec<Diagnostic>,
}

impl PublishReport {
    /// True when either file was written.
    pub fn changed(&self) -> bool {
        self.network_changed || self.devices_changed
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, ImportError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ImportError::Read { path: path.to_path_buf(), source }),
    }
}

fn bak_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".bak");
    PathBuf::from(s)
}

/// Validates `import` with lqos-config and, unless the sanity guard refuses it, writes
/// `network.json` and `ShapedDevices.csv` into `config.lqos_directory`. A file whose content
/// is unchanged is not rewritten; a changed one is first copied to `<file>.bak`.
///
/// The guard refuses an import with no circuits, or one that removes more than
/// `[integration_common] max_shrink_ratio` of the circuits in the current ShapedDevices.csv
/// (`max_shrink_ratio = 1.0` or `opts.force` disables it).
pub fn publish(
    config: &Config,
    import: &Import,
    opts: PublishOptions,
) -> Result<PublishReport, ImportError> {
    let crm = import.crm;
    let net_path = config.network_json_path();
    let csv_path = config.shaped_devices_path();
    // Validate the files as lqosd will read them (rendered, then parsed back, so every problem
    // has its line), and sort the errors the way lqosd does: a problem confined to one circuit
    // (a duplicated address, an unknown parent, a bad rate) does not block the refresh of every
    // other subscriber; lqosd quarantines that circuit on reload and reports it. Problems with
    // the whole import still refuse it and keep the last good files.
    let (rendered, parse_diags) = lqos_config::parse_shaped_devices_str(
        &shaped_devices_to_string(&import.circuits),
        "ShapedDevices.csv",
    );
    let mut diags =
        validate_inputs(&import.network, &rendered, "network.json", "ShapedDevices.csv");
    diags.extend(parse_diags);
    let triaged = lqos_config::triage(&import.network, rendered, &[], diags, "ShapedDevices.csv");
    let diags = triaged.diagnostics;
    // The same ratio rule as lqosd's reload: an import that would quarantine too many circuits
    // is not trusted, and the last good files stay.
    let too_many = !lqos_pipeline::quarantine_allowed(
        triaged.quarantined.len(),
        import.circuits.len(),
        config.queues.max_quarantine_ratio,
    );
    if has_errors(&diags) || too_many {
        return Err(ImportError::Invalid { crm, diagnostics: diags });
    }
    for q in &triaged.quarantined {
        tracing::warn!(
            crm = %crm,
            circuit = %q.circuit_id,
            line = q.line,
            reason = %q.reason,
            "import published with a circuit lqosd will quarantine"
        );
    }
    // The one lock on the input files, shared with the web editor: no interleaved
    // read-modify-write between the two (lqos_config::lock).
    let _lock =
        lqos_config::lock_inputs(&config.lqos_directory, std::time::Duration::from_secs(30))
            .map_err(|source| ImportError::Read {
                path: config.lqos_directory.join(lqos_config::INPUTS_LOCK_FILE),
                source,
            })?;
    let old_csv = read_optional(&csv_path)?;
    let old_ids: Option<HashSet<String>> = old_csv.as_deref().map(|text| {
        let (circuits, _) = parse_shaped_devices_str(text, "ShapedDevices.csv");
        circuits.into_iter().map(|c| c.id.0).collect()
    });
    let new_ids: HashSet<&str> = import.circuits.iter().map(|c| c.id.0.as_str()).collect();
    let removed = old_ids
        .as_ref()
        .map_or(0, |old| old.iter().filter(|id| !new_ids.contains(id.as_str())).count());
    let before = old_ids.as_ref().map_or(0, HashSet::len);
    let max_ratio = config.integration_common.max_shrink_ratio;
    let guard = !opts.force && max_ratio < 1.0;
    if guard && import.circuits.is_empty() {
        return Err(ImportError::Empty { crm });
    }
    if guard && before > 0 && removed as f64 / before as f64 > max_ratio {
        return Err(ImportError::Shrink { crm, before, removed, max_ratio });
    }

    let net_text = network_to_string(&import.network);
    let csv_text = shaped_devices_to_string(&import.circuits);
    let old_net = read_optional(&net_path)?;
    let write = |path: &Path, old: Option<&str>, new: &str| -> Result<bool, ImportError> {
        if old == Some(new) {
            return Ok(false);
        }
        if opts.dry_run {
            return Ok(true);
        }
        if let Some(old) = old {
            let bak = bak_path(path);
            write_atomic(&bak, old.as_bytes())
                .map_err(|source| ImportError::Write { path: bak, source })?;
        }
        write_atomic(path, new.as_bytes())
            .map_err(|source| ImportError::Write { path: path.to_path_buf(), source })?;
        debug!(file = %path.display(), bytes = new.len(), "written");
        Ok(true)
    };
    let network_changed = write(&net_path, old_net.as_deref(), &net_text)?;
    let devices_changed = write(&csv_path, old_csv.as_deref(), &csv_text)?;
    let report = PublishReport {
        circuits_before: old_ids.as_ref().map(HashSet::len),
        circuits: import.circuits.len(),
        devices: import.circuits.iter().map(|c| c.devices.len()).sum(),
        nodes: import.network.nodes.len(),
        removed,
        network_changed,
        devices_changed,
        dry_run: opts.dry_run,
        warnings: diags,
    };
    info!(
        crm = crm.key(),
        circuits = report.circuits,
        devices = report.devices,
        nodes = report.nodes,
        removed,
        changed = report.changed(),
        dry_run = opts.dry_run,
        "{}",
        if opts.dry_run { "import checked (dry run, nothing written)" } else { "import published" }
    );
    Ok(report)
}
