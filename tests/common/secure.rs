//! The secured broker (`scripts/kafka.sh start-secure`, started by `scripts/test.sh`): its
//! listeners, certificates and users come as `TRACEJOIN_SECURE_<KEY>` (the script's
//! `KEY=VALUE` lines). The tests' own clients connect as the super user `admin` over SASL_SSL;
//! ACLs for the principals under test are created through the Admin API's CreateAcls
//! (librdkafka's, which rust-rdkafka does not wrap).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use std::ffi::{CStr, CString};
use std::time::Duration;

/// One of the secured broker's values (`SASL_SSL_BOOTSTRAP`, `CA_FILE`, …).
pub fn env(key: &str) -> String {
    std::env::var(format!("TRACEJOIN_SECURE_{key}")).unwrap_or_else(|_| {
        panic!("TRACEJOIN_SECURE_{key} is not set: run the suite with scripts/test.sh, which starts the secured broker (scripts/kafka.sh start-secure)")
    })
}

/// The super user's client settings (SASL_SSL, SCRAM-SHA-512).
pub fn admin_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", env("SASL_SSL_BOOTSTRAP"))
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanisms", "SCRAM-SHA-512")
        .set("sasl.username", env("ADMIN_USER"))
        .set("sasl.password", env("ADMIN_PASSWORD"))
        .set("ssl.ca.location", env("CA_FILE"));
    c
}

pub async fn create_topics(names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = admin_config().create().expect("admin client");
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        if let Err((topic, e)) = r {
            panic!("creating topic {topic}: {e}");
        }
    }
}

pub fn producer() -> FutureProducer {
    admin_config()
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// What an ACL is on.
#[derive(Debug, Clone, Copy)]
pub enum On<'a> {
    Topic(&'a str),
    /// Every topic whose name starts with this.
    TopicPrefix(&'a str),
    /// Every group whose id starts with this.
    GroupPrefix(&'a str),
}

/// The operations an ACL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Create,
    Delete,
    Describe,
}

/// Allows `principal` (`User:name`) each of `ops` on `on`, from any host.
pub fn allow(principal: &str, on: On<'_>, ops: &[Op]) {
    use rd::rd_kafka_AclOperation_t as O;
    use rd::rd_kafka_ResourcePatternType_t as P;
    use rd::rd_kafka_ResourceType_t as R;
    let (restype, name, pattern) = match on {
        On::Topic(t) => (
            R::RD_KAFKA_RESOURCE_TOPIC,
            t,
            P::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
        ),
        On::TopicPrefix(t) => (
            R::RD_KAFKA_RESOURCE_TOPIC,
            t,
            P::RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
        ),
        On::GroupPrefix(g) => (
            R::RD_KAFKA_RESOURCE_GROUP,
            g,
            P::RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
        ),
    };
    let admin: AdminClient<DefaultClientContext> = admin_config().create().expect("admin client");
    let rk = admin.inner().native_ptr();
    let name = CString::new(name).unwrap();
    let principal = CString::new(principal).unwrap();
    let host = CString::new("*").unwrap();
    let mut errstr = [0 as std::os::raw::c_char; 512];
    // SAFETY: every pointer passed is live for the call; librdkafka copies the strings, the
    // bindings are destroyed after the request, and the event and queue after the result.
    unsafe {
        let mut bindings: Vec<*mut rd::rd_kafka_AclBinding_t> = ops
            .iter()
            .map(|op| {
                let operation = match op {
                    Op::Read => O::RD_KAFKA_ACL_OPERATION_READ,
                    Op::Write => O::RD_KAFKA_ACL_OPERATION_WRITE,
                    Op::Create => O::RD_KAFKA_ACL_OPERATION_CREATE,
                    Op::Delete => O::RD_KAFKA_ACL_OPERATION_DELETE,
                    Op::Describe => O::RD_KAFKA_ACL_OPERATION_DESCRIBE,
                };
                let b = rd::rd_kafka_AclBinding_new(
                    restype,
                    name.as_ptr(),
                    pattern,
                    principal.as_ptr(),
                    host.as_ptr(),
                    operation,
                    rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                    errstr.as_mut_ptr(),
                    errstr.len(),
                );
                assert!(
                    !b.is_null(),
                    "ACL binding: {:?}",
                    CStr::from_ptr(errstr.as_ptr())
                );
                b
            })
            .collect();
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_CreateAcls(
            rk,
            bindings.as_mut_ptr(),
            bindings.len(),
            std::ptr::null(),
            queue,
        );
        let event = rd::rd_kafka_queue_poll(queue, 30_000);
        assert!(!event.is_null(), "CreateAcls: no answer within 30 s");
        let err = rd::rd_kafka_event_error(event);
        let message = if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            let result = rd::rd_kafka_event_CreateAcls_result(event);
            let mut n = 0usize;
            let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut n);
            (0..n)
                .filter_map(|i| {
                    let e = rd::rd_kafka_acl_result_error(*results.add(i));
                    (!e.is_null()).then(|| {
                        CStr::from_ptr(rd::rd_kafka_error_string(e))
                            .to_string_lossy()
                            .into_owned()
                    })
                })
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            CStr::from_ptr(rd::rd_kafka_event_error_string(event))
                .to_string_lossy()
                .into_owned()
        };
        rd::rd_kafka_event_destroy(event);
        rd::rd_kafka_queue_destroy(queue);
        for b in bindings {
            rd::rd_kafka_AclBinding_destroy(b);
        }
        assert!(message.is_empty(), "CreateAcls refused: {message}");
    }
}

/// Every record of `topic` up to its end, read as the super user.
pub fn read_all(topic: &str, within: Duration) -> Vec<super::Record> {
    super::read_all_with(admin_config(), topic, within)
}

/// Offsets committed by `group` for every partition of `topic`, read as the super user.
pub fn committed(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    super::committed_with(admin_config(), group, topic, partitions)
}
