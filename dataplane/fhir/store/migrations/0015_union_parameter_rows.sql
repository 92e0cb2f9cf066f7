-- R4's combo-* parameters of Observation are unions of two others (combo-code is code and
-- component-code): a search on one is now answered from its parts' rows, and writes no
-- longer store rows of their own (`SearchParam::union_of` in the search crate, whose test
-- lists exactly these six). The rows written before are never read again.
DELETE FROM search_token
 WHERE res_type = 'Observation'
   AND param IN ('combo-code', 'combo-data-absent-reason', 'combo-value-concept');
DELETE FROM search_quantity
 WHERE res_type = 'Observation' AND param = 'combo-value-quantity';
DELETE FROM search_composite
 WHERE res_type = 'Observation'
   AND param IN ('combo-code-value-concept', 'combo-code-value-quantity');
