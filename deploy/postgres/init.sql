-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d).
-- One database per side: no side ever reads another's tables; they meet only on queues.
CREATE DATABASE finance;
CREATE DATABASE dataverse;
CREATE DATABASE bridge;
