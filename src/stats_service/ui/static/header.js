// Pages with only the shared header: who is signed in, the sign-out form, the nav.
import { showError, startSession } from "./common.js";

startSession().catch(showError);
