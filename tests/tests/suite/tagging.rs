//! Incidents tagged change-related both ways, counted once: on both stores.

use changehub_tests::{aws, tagging_contract as contract};

use super::store_contract::{contract_cases, embedded};

contract_cases!(
    an_incident_after_a_change_on_its_service_is_tagged_both_ways_and_counted_once,
    a_change_on_an_unrelated_service_is_not_tagged,
    removing_a_tag_reverses_the_count_and_it_stays_removed,
    the_tenants_major_rule_decides_which_incidents_are_major,
);
