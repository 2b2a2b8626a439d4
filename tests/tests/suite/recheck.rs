//! A change or deployment event that arrives after the incident re-checks
//! it, exactly once whatever the duplicates and concurrent consumers: on both stores.

use changehub_tests::{aws, recheck_contract as contract};

use super::store_contract::{contract_cases, embedded};

contract_cases!(
    a_change_recorded_after_its_incident_tags_it_both_ways_once,
    a_change_event_leaves_incidents_outside_its_window_alone,
    a_late_change_on_a_dependency_tags_the_incident_that_depends_on_it,
    a_change_still_implementing_tags_an_incident_started_after_its_start,
    concurrent_consumers_of_incident_and_change_events_link_count_and_tell_once,
    a_change_that_moves_past_its_incident_drops_it_and_its_count,
);
