DROP TABLE IF EXISTS operator_requests;
