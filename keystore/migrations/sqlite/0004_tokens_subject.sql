-- A subject's tokens are listed a page at a time along this index, in id
-- order (ids are time-ordered), as are all tokens in subject order.
CREATE INDEX tokens_subject ON tokens (subject, id);
