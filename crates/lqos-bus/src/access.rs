//! Who may ask what. Every [`Command`] needs one [`Access`] level; the server decides a peer's
//! level from its Unix credentials (see `server::PeerPolicy`):
//!
//! | peer                                                  | level          |
//! |-------------------------------------------------------|----------------|
//! | root, or lqosd's own user                             | [`Access::Admin`] |
//! | member of group `lqos-admin` (primary or in /etc/group) | [`Access::Admin`] |
//! | member of group `lqos`                                | [`Access::Read`]  |
//! | anyone else                                           | refused        |
//!
//! `Read` covers every command that only looks (status, statistics, mappings, validation and
//! dry runs, which read the input files but change nothing). `Admin` covers everything that
//! changes the kernel, lqos.conf or what lqosd reports about others (Reload, ClearTree,
//! SchedulerReport, EditConfig).
//! The match below has no wildcard on purpose: a new command does not compile until someone
//! decides its level.

use serde::{Deserialize, Serialize};

use crate::Command;

/// What a bus peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Commands that only read state.
    Read,
    /// Every command, including those that change the kernel.
    Admin,
}

impl Access {
    /// `read` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Admin => "admin",
        }
    }
}

impl Command {
    /// The level a peer needs to send this command.
    pub fn required_access(&self) -> Access {
        match self {
            Command::Ping
            | Command::DryRun
            | Command::Validate
            | Command::Status
            | Command::ListMappings
            | Command::CircuitStats { .. }
            | Command::TopCircuits { .. }
            | Command::NodeStats
            | Command::CircuitFlows { .. }
            | Command::History { .. }
            | Command::Worst { .. }
            | Command::QoeDistribution
            | Command::UnknownAddresses { .. }
            | Command::CircuitQueue { .. } => Access::Read,
            Command::Reload { .. }
            | Command::ClearTree
            | Command::SchedulerReport(_)
            | Command::EditConfig { .. } => Access::Admin,
        }
    }

    /// The command's name as it appears on the wire (`reload`, `clear_tree`, …), for messages.
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("command").and_then(|c| c.as_str().map(str::to_owned)))
            .unwrap_or_else(|| "unknown".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReloadMode, SchedulerState};

    #[test]
    fn kernel_changing_commands_need_admin_and_looking_needs_read() {
        for c in [
            Command::Reload { mode: ReloadMode::Incremental },
            Command::Reload { mode: ReloadMode::Full },
            Command::ClearTree,
            Command::SchedulerReport(SchedulerState::default()),
            Command::EditConfig { settings: vec![("node_name".into(), "x".into())] },
        ] {
            assert_eq!(c.required_access(), Access::Admin, "{c:?}");
        }
        for c in [
            Command::Ping,
            Command::Status,
            Command::Validate,
            Command::DryRun,
            Command::ListMappings,
            Command::NodeStats,
            Command::TopCircuits { n: 5 },
            Command::CircuitStats { circuit: None },
            Command::Worst {
                kind: crate::WorstKind::Nodes,
                by: crate::WorstBy::Rtt,
                window: crate::QoeWindow::Hour1,
                limit: 10,
            },
            Command::QoeDistribution,
            Command::UnknownAddresses { limit: 10 },
            Command::CircuitQueue { circuit: "c1".into() },
        ] {
            assert_eq!(c.required_access(), Access::Read, "{c:?}");
        }
        assert!(Access::Admin > Access::Read);
        assert_eq!(Command::ClearTree.name(), "clear_tree");
    }
}
