// The backend README's complete example passes the published conformance suite.
import '../../../examples/array-backend.conformance.ts';
