//! Helpers shared by the test modules.

use lqos_config::{Circuit, Config, Network};
use lqos_plan::{HostFacts, Identities, Plan, PlanError, PlanInput, plan};

/// Plans with the given inputs.
pub fn run(
    config: &Config,
    net: &Network,
    circuits: &[Circuit],
    facts: HostFacts,
    previous: &Identities,
) -> Result<Plan, PlanError> {
    plan(&PlanInput { config, network: net, circuits, facts, previous })
}

/// Plans from scratch and panics on error.
pub fn fresh(config: &Config, net: &Network, circuits: &[Circuit], facts: HostFacts) -> Plan {
    run(config, net, circuits, facts, &Identities::default()).expect("plan")
}
