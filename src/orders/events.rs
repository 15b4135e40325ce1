//! The live events of orders: what subscribers of a tenant's `orders` channel receive when an
//! order is created or changes status. Built here, once per change; the hub only frames and
//! fans them out.

use serde_json::Value;

use super::Order;
use crate::ids::TenantId;

/// One event about an order of `tenant`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderEvent {
    pub tenant: TenantId,
    /// The event's name on the channel (`order.created`, `order.updated`).
    pub name: &'static str,
    /// The order as its JSON representation.
    pub data: Value,
}

/// An order was created.
pub fn created(order: &Order) -> OrderEvent {
    event("order.created", order)
}

/// An order's status changed.
pub fn updated(order: &Order) -> OrderEvent {
    event("order.updated", order)
}

fn event(name: &'static str, order: &Order) -> OrderEvent {
    OrderEvent {
        tenant: order.tenant_id,
        name,
        data: serde_json::to_value(order).expect("orders serialize"),
    }
}
