//! What the operator's other services may do to an instance through the
//! control routes, with the same rules as the user's own requests.
