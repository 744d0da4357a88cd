-- The head of every aggregate's hash chain as this projection has applied it: each new event
-- must link to it, so an event forged straight into the stream stops the projection.
CREATE TABLE chain_heads (
    aggregate text PRIMARY KEY,                  -- <aggregate type>/<id>
    head      text NOT NULL
);
