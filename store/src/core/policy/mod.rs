//! ACL policies: parsing (HCL and JSON), the policy store at `sys/policies/acl/`, and
//! evaluation of a token's merged ACL against a request path.
